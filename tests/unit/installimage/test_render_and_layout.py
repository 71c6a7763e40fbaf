"""The installimage config and post-install script, whole, against reviewed golden files; the layout's own
refusals; and the post-install script run for real (bash, awk) on an fstab shaped like installimage's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jinja2
import pytest
from fleets import XFS_VOLUMES, make_fleet

from drape_fleet.installimage.layout import LayoutError, layout_for, runtime_xfs_mounts
from drape_fleet.installimage.render import POST_INSTALL_MARKER_TEXT, render_config, render_post_install
from drape_fleet.provision import render as shared_render

GOLDEN = Path(__file__).resolve().parents[2] / "fixtures" / "installimage"


@pytest.mark.parametrize("boot_mode", ["bios", "uefi"])
def test_config_is_exactly_the_reviewed_one(boot_mode: str) -> None:
    config = render_config(layout_for(make_fleet(), "ax1", boot_mode))  # type: ignore[arg-type]
    assert config == (GOLDEN / f"ax1-{boot_mode}.conf").read_text()


def test_swraid_comes_before_swraidlevel_and_the_esp_only_with_uefi() -> None:
    bios = render_config(layout_for(make_fleet(), "ax1", "bios")).splitlines()
    uefi = render_config(layout_for(make_fleet(), "ax1", "uefi")).splitlines()
    assert bios.index("SWRAID 1") < bios.index("SWRAIDLEVEL 1")
    assert "PART /boot/efi esp 256M" in uefi
    assert not any("esp" in line for line in bios)


def test_post_install_script_is_exactly_the_reviewed_one() -> None:
    assert render_post_install(layout_for(make_fleet(), "ax1", "bios")) == (GOLDEN / "post-install.sh").read_text()


def test_sizes_swap_and_hostname_come_from_the_model() -> None:
    fleet = make_fleet(reinstall={"root_size": "64G", "swap_size": "8G", "boot_size": "2G"})
    config = render_config(layout_for(fleet, "ax2", "bios"))
    assert "HOSTNAME ax2\n" in config
    assert "PART /boot ext4 2G\n" in config
    assert "LV vg0 root / ext4 64G\nLV vg0 swap swap swap 8G\nLV vg0 docker /var/lib/docker xfs 1200G\n" in config


def test_a_template_value_the_layout_lacks_fails_the_render(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "installimage").mkdir()
    (tmp_path / "installimage" / "installimage.conf.j2").write_text("HOSTNAME {{ hostname }}\nIMAGE {{ image_url }}\n")
    monkeypatch.setattr(shared_render, "files_dir", lambda: tmp_path)
    with pytest.raises(jinja2.UndefinedError, match="image_url"):
        render_config(layout_for(make_fleet(), "ax1", "bios"))


def test_docker_on_ext4_is_refused_with_the_field_and_the_fix() -> None:
    volumes = [dict(XFS_VOLUMES[0], filesystem="ext4"), XFS_VOLUMES[1]]
    fleet = make_fleet(provisioning={"storage": {"volumes": volumes}})
    with pytest.raises(LayoutError, match=r'volumes\[0\] \(docker, /var/lib/docker\) is ext4.*Fix: filesystem = "xfs"'):
        layout_for(fleet, "ax1", "bios")


def test_the_store_needs_a_volume_and_names_are_not_the_systems() -> None:
    fleet = make_fleet(provisioning={"storage": {"volumes": [XFS_VOLUMES[0], dict(XFS_VOLUMES[1], name="root")]}})
    with pytest.raises(LayoutError, match=r"volumes\[1\] is named 'root'"):
        layout_for(fleet, "ax1", "bios")
    fleet = make_fleet(provisioning={"storage": {"volumes": [XFS_VOLUMES[0]]},
                                     "cache": {"store_path": "/srv/drape/pnpm-store"}})
    with pytest.raises(LayoutError, match=r"no volume is mounted at /srv/drape/pnpm-store for the shared store"):
        layout_for(fleet, "ax1", "bios")


def test_the_store_volume_is_the_one_holding_the_store_path() -> None:
    assert runtime_xfs_mounts(make_fleet()) == ("/var/lib/docker", "/srv/drape")


INSTALLIMAGE_FSTAB = """proc /proc proc defaults 0 0
# /dev/md/0
UUID=1b2c /boot ext4 defaults 0 0
/dev/vg0/root / ext4 defaults 0 0
/dev/vg0/docker /var/lib/docker xfs defaults 0 0
/dev/vg0/drape /srv/drape xfs defaults 0 0
"""


def test_post_install_script_adds_project_quotas_and_is_idempotent(tmp_path: Path) -> None:
    script = tmp_path / "post-install.sh"
    script.write_text(render_post_install(layout_for(make_fleet(), "ax1", "bios")))
    fstab, marker = tmp_path / "fstab", tmp_path / "marker"
    fstab.write_text(INSTALLIMAGE_FSTAB)
    env = {"DRAPE_FSTAB": str(fstab), "DRAPE_MARKER": str(marker), "PATH": "/usr/bin:/bin"}
    for _ in range(2):
        subprocess.run(["bash", str(script)], env=env, check=True, capture_output=True)
        assert fstab.read_text() == INSTALLIMAGE_FSTAB.replace(
            "/var/lib/docker xfs defaults 0", "/var/lib/docker xfs defaults,noatime,prjquota 0").replace(
            "/srv/drape xfs defaults 0", "/srv/drape xfs defaults,noatime,prjquota 0")
    assert marker.read_text() == POST_INSTALL_MARKER_TEXT + "\n"


def test_post_install_script_fails_when_a_volume_is_missing_from_fstab(tmp_path: Path) -> None:
    script = tmp_path / "post-install.sh"
    script.write_text(render_post_install(layout_for(make_fleet(), "ax1", "bios")))
    fstab, marker = tmp_path / "fstab", tmp_path / "marker"
    fstab.write_text(INSTALLIMAGE_FSTAB.replace("/dev/vg0/drape /srv/drape xfs defaults 0 0\n", ""))
    result = subprocess.run(["bash", str(script)], env={"DRAPE_FSTAB": str(fstab), "DRAPE_MARKER": str(marker),
                                                        "PATH": "/usr/bin:/bin"}, capture_output=True)
    assert result.returncode != 0
    assert not marker.exists()


@pytest.mark.parametrize("boot_mode", ["bios", "uefi"])
def test_the_production_fleet_file_gives_a_valid_layout_for_every_host(boot_mode: str) -> None:
    from drape_fleet.config import load_fleet
    from drape_fleet.installimage.machine import Machine
    from drape_fleet.installimage.validate import check_config

    fleet = load_fleet(Path(__file__).resolve().parents[3] / "config" / "production.toml")
    for host in fleet.hosts:
        layout = layout_for(fleet, host.name, boot_mode)  # type: ignore[arg-type]
        machine = Machine.from_settings(fleet.reinstall, boot_mode)  # type: ignore[arg-type]
        assert check_config(render_config(layout), machine, xfs_mounts=layout.quota_mounts) == []


def test_a_config_file_can_be_checked_from_the_command_line(tmp_path: Path) -> None:
    good = subprocess.run([sys.executable, "-m", "drape_fleet.installimage", str(GOLDEN / "ax1-uefi.conf"),
                           "--boot-mode", "uefi", "--lsblk", str(GOLDEN / "lsblk-ax102.json")],
                          capture_output=True, text=True)
    assert good.returncode == 0
    assert good.stdout.splitlines()[-1] == f"{GOLDEN / 'ax1-uefi.conf'}: 0 error(s), 0 warning(s)"
    bad = tmp_path / "bad.conf"
    bad.write_text((GOLDEN / "ax1-bios.conf").read_text().replace("SWRAID 1\nSWRAIDLEVEL 1", "SWRAIDLEVEL 1\nSWRAID 1"))
    result = subprocess.run([sys.executable, "-m", "drape_fleet.installimage", str(bad)], capture_output=True,
                            text=True)
    assert result.returncode == 1
    assert "error: [key-shadowed] line 8 ('SWRAIDLEVEL 1') starts with SWRAID" in result.stdout
