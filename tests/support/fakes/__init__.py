"""Local fakes of external APIs this project cannot reach from CI (Fly Machines, Hetzner Cloud DNS,
Hetzner Robot webservice).

Each is a real HTTP server on loopback that follows the provider's published documents (routes, status
codes, error bodies, pagination, rate limits); the module docstrings list what each document says and
where a behaviour had to be inferred. Tests import them (``from fakes.fly_machines import FakeFly``);
lab and end-to-end tests can run them as processes (``python tests/support/fakes/fly_machines.py``).
"""
