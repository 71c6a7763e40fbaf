"""Provisioning: pure builders (configs, rulesets, plans) the deploys in ``deploys/`` apply with pyinfra,
the runner behind `invoke provision`, and the checks made before any host is touched."""
