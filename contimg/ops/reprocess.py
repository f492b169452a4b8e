"""`contimg reprocess image`: image observations again with changed options, as new versions.

Live processing is not disturbed: reprocessing takes no job from the queue and
writes each new version to a directory of its own (``names.image_version_dir``);
the pipeline's image stays as version 1.  Every version is registered in the
``image_versions`` registry, and the observation's current image switches to the
new one in the same transaction that registers it (or not, with ``keep_current``).
The same prepare -> work -> record shape as the queued steps: the work is the
image step's own ``work`` on files only.
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from filelock import FileLock, Timeout

from contimg import names
from contimg.config import Config, load_config
from contimg.state import Database, images
from contimg.steps.contract import StepError
from contimg.steps.image import ImageOrder, image_options
from contimg.steps.ms_lookup import require_ms
from contimg.steps.runner import describe, execute


@dataclass
class Reprocessed:
    observation_id: str
    status: str            # done | failed
    message: str
    version: int | None = None
    data: dict = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status == "failed"


def image_config(cfg: Config, settings: dict[str, str]) -> Config:
    """The configuration with ``image.*`` settings changed (validated like any other value)."""
    wrong = [k for k in settings if not k.startswith("image.")]
    if wrong:
        raise StepError(f"reprocess image takes image.* options only, not {', '.join(wrong)}",
                        retryable=False)
    return load_config(home=cfg.home, config_file=cfg.config_file, overrides=settings)


def select(db: Database, obs_ids: list[str], start_mjd: float | None, end_mjd: float | None) -> list[str]:
    """The named observations, or every imaged one whose mid time is in [start, end]."""
    if obs_ids:
        return obs_ids
    return [i["observation_id"] for i in images.list_images(db)
            if (start_mjd is None or i["mid_mjd"] >= start_mjd)
            and (end_mjd is None or i["mid_mjd"] <= end_mjd)]


def prepare(cfg: Config, db: Database, obs_id: str) -> tuple[int, ImageOrder]:
    if images.get_image(db, obs_id) is None:
        raise StepError(f"{obs_id} has no image yet: reprocessing makes new versions of images "
                        "the pipeline has made ('contimg status')", retryable=False)
    ms = require_ms(db, obs_id)
    version = images.next_version(db, obs_id)
    out_dir = names.image_version_dir(cfg.staging, obs_id, version)
    order = ImageOrder("image", obs_id, root=str(cfg.staging), outputs=(str(out_dir),),
                       lock=str(out_dir.parent / f".{out_dir.name}.lock"), uses_casa=True,
                       ms=str(ms["path"]), out_dir=str(out_dir), options=image_options(cfg),
                       dec_deg=ms["dec_deg"], mid_mjd=ms["mid_mjd"], start_mjd=ms["start_mjd"],
                       end_mjd=ms["end_mjd"])
    return version, order


def reprocess_images(cfg: Config, db: Database, obs_ids: list[str], settings: dict[str, str], *,
                     keep_current: bool = False, note: str = "",
                     announce=lambda line: None) -> list[Reprocessed]:
    new_cfg = image_config(cfg, settings)
    out = []
    for obs_id in obs_ids:
        try:
            version, order = prepare(new_cfg, db, obs_id)
            with version_lock(order):
                if images.next_version(db, obs_id) != version:
                    raise StepError(f"version {version} of {obs_id}'s image was registered by "
                                    "another reprocess meanwhile; run it again", retryable=False)
                # an unregistered directory of this version is a crashed reprocess's: made
                # with options nobody recorded, so it is not reused
                shutil.rmtree(order.out_dir, ignore_errors=True)
                announce(f"reprocess: {obs_id} image version {version} ...")
                result = execute(replace(order, lock=None))  # the version's lock is held here
                with db.transaction() as conn:
                    images.record_version_in(conn, obs_id, version, dir=order.out_dir,
                                             files=result["files"], figures=result["figures"],
                                             options=settings, note=note, current=not keep_current)
        except Exception as exc:
            out.append(Reprocessed(obs_id, "failed", describe(exc)))
            continue
        noise = result["figures"].get("noise_jy") or float("nan")
        out.append(Reprocessed(obs_id, "done", f"version {version} in {order.out_dir}"
                               f"{'' if keep_current else ' (now current)'}: noise "
                               f"{noise * 1e3:.2f} mJy/beam", version, {"files": result["files"]}))
    return out


@contextmanager
def version_lock(order: ImageOrder):
    """Held from clearing a version's directory until it is registered: a second reprocess
    of the same observation and version waits for nothing and is refused."""
    lock = FileLock(order.lock)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise StepError(f"{order.subject} is being reprocessed by another process "
                        f"(lock {order.lock}); run it again when that one is done",
                        retryable=False) from None
    try:
        yield
    finally:
        lock.release()


def versions(db: Database, obs_ids: list[str]) -> list[dict]:
    return images.list_versions(db, obs_ids or None)

