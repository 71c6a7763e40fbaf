"""Monitoring and alerting for the fleet and the previews (see README.md here).

Pure builders turn the fleet file's ``[monitoring]`` section into what the deploys put on hosts (``plan``,
``exporters``, ``prometheus``, ``rules``, ``alertmanager``, ``receivers``); ``health`` answers "is monitoring
working" for ops and for `invoke cutover phase5`, through ``api`` (Prometheus' and Alertmanager's HTTP APIs,
reached over SSH on the monitoring server); ``tunnel`` lets a browser on an ops machine reach the UIs;
``receiver`` is a webhook receiver the lab and its tests listen with.
"""
