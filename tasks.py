"""Ops tasks (`invoke --list`). Thin on purpose: parse options, call the library, print the outcome."""

from __future__ import annotations

from invoke.collection import Collection

from drape_fleet.tasks import (
    backup_tasks,
    bench_tasks,
    cache_tasks,
    cutover_tasks,
    fleet_tasks,
    hosts_tasks,
    ingress_tasks,
    lab_tasks,
    monitoring_tasks,
    pki_tasks,
    plan_tasks,
    preview_bench_tasks,
    provision_tasks,
    robot_tasks,
    service_tasks,
)

namespace = Collection()
namespace.add_collection(Collection.from_module(lab_tasks, name="lab"))
namespace.add_collection(Collection.from_module(pki_tasks, name="pki"))
namespace.add_collection(Collection.from_module(hosts_tasks, name="hosts"))
namespace.add_task(provision_tasks.provision)
namespace.add_task(provision_tasks.verify)
namespace.add_collection(Collection("robot", firewall=robot_tasks.firewall))
fleet = Collection.from_module(fleet_tasks, name="fleet")
fleet.add_task(robot_tasks.robot_list)
namespace.add_collection(fleet)
bench = Collection.from_module(bench_tasks, name="bench")
bench.add_task(preview_bench_tasks.preview)
namespace.add_collection(bench)
namespace.add_collection(Collection.from_module(service_tasks, name="service"))
namespace.add_task(plan_tasks.plan)
namespace.add_collection(Collection.from_module(cache_tasks, name="cache"))
namespace.add_collection(Collection.from_module(ingress_tasks, name="ingress"))
namespace.add_task(cutover_tasks.cutover)
namespace.add_collection(Collection.from_module(monitoring_tasks, name="monitoring"))
namespace.add_collection(Collection.from_module(backup_tasks, name="backup"))
