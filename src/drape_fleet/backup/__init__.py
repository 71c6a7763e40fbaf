"""Backups and restore drills (docs/backups.md): what is not in git survives losing a server.

``catalogue`` lists every piece of state and what we do about it; ``plan`` tells the agent
(files/backup/drape-backup.py, run by each host's timer and by the ops machine) what to back up and where;
``agent`` runs it over SSH or locally; ``service`` is what `invoke backup.*` calls.
"""
