"""The fuzzer's plug-in interface: one :class:`FuzzFormat` per input format.

A format plug-in says three things:

* **seeds** - how to build real, convertible inputs (each a folder of files plus the file irc
  is pointed at), built once per session;
* **mutators** - functions ``mutator(rng, case_folder, seed) -> Mutation`` that damage a copy of
  a seed in place (raising :class:`NotApplicable` when the seed offers nothing to damage);
* **argv** - how to invoke irc on the (mutated) input.

Plug-ins live in ``tests/fuzz/formats/<name>.py`` and expose ``FORMAT`` (an instance, or
``None`` when the format's libraries are missing); they are discovered automatically. The
byte-level mutators below fit any format and are meant to be reused.
"""
from __future__ import annotations

import importlib
import pkgutil
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


class NotApplicable(Exception):
    """The mutator has nothing to mutate in this seed; the harness tries the next one."""


@dataclass(frozen=True)
class Seed:
    name: str
    folder: Path  # every file of the seed
    main: str  # the file irc reads, relative to ``folder``
    extra_args: tuple[str, ...] = ()


@dataclass
class Mutation:
    """What a mutator did to the case folder."""

    description: str
    extra_args: tuple[str, ...] = ()
    main: str | None = None  # another file irc should read instead of seed.main
    # Only names (or other meaning-free details) changed: the input must still convert (exit 0).
    must_convert: bool = False
    # A conversion irc cannot verify by design (e.g. a Caffe net without weights): exit 0 needs
    # model.json and name_map.json with valid names, but no weights file or verification table.
    unverified: bool = False


Mutator = Callable[[random.Random, Path, Seed], Mutation]


@dataclass
class FuzzFormat:
    """Base of a format plug-in; subclasses fill ``seed_names``/``build_seed``/``mutators``."""

    name: str
    seed_names: tuple[str, ...] = ()
    mutators: dict[str, Mutator] = field(default_factory=dict)
    default_iterations: int = 100

    def build_seed(self, name: str, folder: Path) -> Seed:  # pragma: no cover - abstract
        raise NotImplementedError

    def argv(self, main_file: Path, out: Path, extra_args: tuple[str, ...]) -> list[str]:
        return ["compile", str(main_file), "-o", str(out), *extra_args]

    def hang_probe(self, main_file: Path, applied: list[str]) -> str | None:
        """A reason when irc would hang on this input (then irc is not run in-process: a hang
        in native code cannot be interrupted); None to run the case. Checked in a child
        process by formats whose libraries are known to spin on corrupt files."""
        return None

    def verify_argv(self, main_file: Path, out: Path) -> list[str]:
        """An independent re-check of an exit-0 folder: `irc verify` on other random inputs."""
        return ["verify", str(main_file), str(out), "--seed", "7", "--batch", "3"]


def discover() -> dict[str, FuzzFormat]:
    """Every plug-in in tests/fuzz/formats whose libraries are importable, by name."""
    from tests.fuzz import formats

    found = {}
    for info in sorted(pkgutil.iter_modules(formats.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{formats.__name__}.{info.name}")
        fmt = getattr(module, "FORMAT", None)
        if fmt is not None:
            found[fmt.name] = fmt
    return found


# ---- byte-level mutators, for any format -------------------------------------------------


def _files(folder: Path, seed: Seed, rng: random.Random, main_bias: float = 0.75) -> Path:
    """The main file usually, sometimes another file of the seed (weights, external data)."""
    others = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != seed.main)
    if others and rng.random() > main_bias:
        return rng.choice(others)
    return folder / seed.main


def flip_bytes(rng: random.Random, folder: Path, seed: Seed) -> Mutation:
    path = _files(folder, seed, rng)
    data = bytearray(path.read_bytes())
    if not data:
        raise NotApplicable
    n = rng.choice([1, 1, 2, 4, 16, max(1, len(data) // 100)])
    for _ in range(n):
        i = rng.randrange(len(data))
        data[i] ^= 1 << rng.randrange(8) if rng.random() < 0.7 else rng.randrange(1, 256)
    path.write_bytes(bytes(data))
    return Mutation(f"flipped {n} byte(s) of {path.name}")


def truncate(rng: random.Random, folder: Path, seed: Seed) -> Mutation:
    path = _files(folder, seed, rng)
    data = path.read_bytes()
    if not data:
        raise NotApplicable
    cut = rng.choice([0, 1, rng.randrange(len(data)), len(data) - 1, len(data) // 2])
    path.write_bytes(data[:cut])
    return Mutation(f"truncated {path.name} to {cut} of {len(data)} bytes")


def splice(rng: random.Random, folder: Path, seed: Seed) -> Mutation:
    """Insert random bytes, zero a range, or repeat a chunk."""
    path = _files(folder, seed, rng)
    data = bytearray(path.read_bytes())
    if not data:
        raise NotApplicable
    i = rng.randrange(len(data))
    how = rng.choice(["insert", "zero", "repeat", "delete"])
    n = rng.choice([1, 3, 17, 256])
    if how == "insert":
        data[i:i] = bytes(rng.randrange(256) for _ in range(n))
    elif how == "zero":
        data[i:i + n] = bytes(len(data[i:i + n]))
    elif how == "repeat":
        data[i:i] = data[i:i + n]
    else:
        del data[i:i + n]
    path.write_bytes(bytes(data))
    return Mutation(f"{how} {n} byte(s) at offset {i} of {path.name}")


BYTE_MUTATORS: dict[str, Mutator] = {"flip_bytes": flip_bytes, "truncate": truncate,
                                     "splice": splice}


def copy_seed(seed: Seed, folder: Path) -> None:
    shutil.copytree(seed.folder, folder, symlinks=True)


# ---- names that break naive converters (trap 33) -------------------------------------------

WEIRD_NAMES = [
    "/layer1/conv/Conv", "..", "../../etc/passwd", "a b  c", " leading space", "UPPER",
    "名前/层", "Ünïcödé-naïve", "emoji_😀", "x" * 300, "-1", "0", "123abc", "a.b:c;d",
    "tab\tnewline\n", "back\\slash", "__", "___double__under___", "café", "NUL\x00byte",
    "model_weights", "input", "output", "%%$$##", "/", "Conv", "CONV", "conv",
]

