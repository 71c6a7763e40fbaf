"""The phased Fly.io -> Hetzner cutover (ops side): phases, gates, rollback, status and report, behind
`invoke cutover ...` (docs/cutover.md). What the backend imports is ``drape_fleet.routing``."""
