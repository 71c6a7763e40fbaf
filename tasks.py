"""Ops tasks (`invoke --list`). Thin on purpose: parse options, call the library, print the outcome."""

from __future__ import annotations

from invoke.collection import Collection

from drape_fleet.tasks import lab_tasks

namespace = Collection()
namespace.add_collection(Collection.from_module(lab_tasks, name="lab"))
