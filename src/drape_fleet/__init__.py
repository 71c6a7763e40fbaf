"""drape-fleet: provision, verify and run the Drape preview fleet.

The runtime (``drape_fleet.runtime``) and the configuration models (``drape_fleet.config``) import with
only ``docker`` and ``pydantic`` installed; everything ops-only lives behind the ``ops`` extra.
"""

__version__ = "0.1.0"
