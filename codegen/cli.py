"""``python -m codegen``: generate, check and scaffold from incident.io's webhook spec."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import diff, envelopes, fetch, formatting, loader, output, parser, project
from .emit.templates import render
from .errors import GenerationError, SpecError
from .ir import ENVELOPES, Envelope, Spec
from .naming import is_identifier

DEFAULT_SPEC = Path("spec/webhooks.json")
DEFAULT_OUT = Path("generated")
DEFAULT_PACKAGE = "incident_webhooks"


class UsageError(Exception):
    """A command-line mistake: exit 2 with the message."""


def project_root() -> Path | None:
    """The generator's repository: the nearest folder at or above the current one whose
    pyproject.toml has a ``[tool.codegen]`` table. Default paths are relative to it, so a
    command run from a subfolder reads and writes the same files as from the root."""
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if fetch.has_tool_config(folder / "pyproject.toml"):
            return folder
    return None


def default_path(relative: Path) -> Path:
    root = project_root()
    if root is None:
        return relative
    return Path(os.path.relpath(root / relative))


def spec_path(args: argparse.Namespace) -> Path:
    given: Path | None = args.spec
    if given is not None:
        return given
    path = default_path(DEFAULT_SPEC)
    return path if path.exists() or project_root() is not None else find_default_spec()


def out_path(args: argparse.Namespace) -> Path:
    given: Path | None = args.out
    return given if given is not None else default_path(DEFAULT_OUT)


def read_spec(path: Path, args: argparse.Namespace) -> Spec:
    return parser.parse(
        loader.load_spec(path), str(path), constraints=constraints(args), envelope=envelope(args)
    )


def find_default_spec() -> Path:
    """``spec/webhooks.json`` of the project this is run in, from any folder inside it."""
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        candidate = folder / DEFAULT_SPEC
        if candidate.is_file():
            return candidate
    raise UsageError(
        f"no {DEFAULT_SPEC} in {here} or any folder above it; pass --spec PATH "
        "(the committed spec is spec/webhooks.json at the root of the generator's repository)"
    )


def constraints(args: argparse.Namespace) -> bool:
    """The command line's choice, else ``[tool.codegen] constraints``, else off."""
    chosen = getattr(args, "constraints", None)
    if chosen is None:
        root = project_root()
        chosen = fetch.tool_config(root / "pyproject.toml").get("constraints", False) if root else False
    if not isinstance(chosen, bool):
        raise UsageError("[tool.codegen] constraints must be true or false")
    return chosen


def envelope(args: argparse.Namespace) -> Envelope | None:
    """The command line's ``--envelope``, else ``[tool.codegen] envelope`` (a kind's name or a
    table of fields), else None: inferred from the spec."""
    chosen = getattr(args, "envelope", None)
    where = "--envelope"
    if chosen is None:
        root = project_root()
        chosen = fetch.tool_config(root / "pyproject.toml").get("envelope") if root else None
        where = "[tool.codegen] envelope"
    if chosen is None:
        return None
    try:
        return envelopes.from_setting(chosen)
    except envelopes.EnvelopeSettingError as exc:
        raise UsageError(f"{where}: {exc}") from None


# Top-level modules the generated package imports, or that what it imports imports: a
# package of the same name would shadow one of them (or be shadowed) and fail to import.
RUNTIME_MODULES = frozenset({
    "pydantic", "pydantic_core", "standardwebhooks", "starlette", "uvicorn", "redis",
    "typing_extensions", "annotated_types", "typing_inspection", "anyio", "sniffio", "idna",
    "h11", "click", "httpx", "httpcore", "certifi", "attrs", "attr", "dateutil", "deprecated",
    "wrapt", "async_timeout", "fastapi", "svix", "codegen",
})  # fmt: skip


def package_name(args: argparse.Namespace) -> str:
    name: str = args.package
    if not is_identifier(name):
        raise UsageError(f"--package {name!r} is not a Python package name")
    if name in sys.stdlib_module_names or name in RUNTIME_MODULES or name.startswith("__"):
        raise UsageError(
            f"--package {name!r} is the name of a module the generated package imports (or "
            "of the standard library); it could not be imported: choose another name"
        )
    return name


def cmd_generate(args: argparse.Namespace) -> int:
    package = package_name(args)
    # The repository's own generated/ (the default) may be rewritten from inside it; a
    # folder given with --out may not hold the current one.
    inside = bool(getattr(args, "out_is_default", False))
    try:
        output.check_output(args.out, inside_allowed=inside)
    except output.UnsafeOutput as exc:
        raise UsageError(f"{exc}; nothing was written") from None
    spec = read_spec(args.spec, args)
    files = project.build(spec, package)
    try:
        changed = output.write_tree(files, args.out, inside_allowed=inside)
    except output.UnsafeOutput as exc:  # the folder changed while the code was generated
        raise UsageError(f"{exc}; nothing was written") from None
    state = "wrote" if changed else "unchanged:"
    print(f"{state} {args.out} ({len(spec.webhooks)} webhooks, {len(files)} files)")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    spec = read_spec(args.spec, args)
    expected = project.build(spec, package_name(args))
    diff = output.diff_trees(expected, output.read_tree(args.out), str(args.out))
    if diff:
        sys.stdout.write(diff)
        print(f"\n{args.out} is stale: run `make generate` and commit the result.", file=sys.stderr)
        return 1
    print(f"{args.out} is up to date with {args.spec} ({len(spec.webhooks)} webhooks)")
    return 0


def cmd_scaffold(args: argparse.Namespace) -> int:
    target: Path = args.path
    if target.exists() or target.is_symlink():
        raise UsageError(f"{target} exists; scaffold never overwrites a file (it is yours)")
    spec = read_spec(args.spec, args)
    code = formatting.format_python(
        render("scaffold.py", spec=spec, package=package_name(args)), str(target), args.package
    )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # "x" mode: even a file created since the check above is not overwritten.
        with open(target, "x", encoding="utf-8") as handle:
            handle.write(code)
    except OSError as exc:
        raise UsageError(f"cannot write {exc.filename or target}: {exc.strerror}") from None
    print(f"wrote {target}: a handler stub for each of {len(spec.webhooks)} webhooks")
    return 0


def cmd_update_spec(args: argparse.Namespace) -> int:
    target: Path = args.spec
    if args.from_file is not None:
        source = str(args.from_file)
        raw = loader.read_limited(args.from_file)
    else:
        root = project_root()
        url: str | None = args.url or (fetch.configured_url(root / "pyproject.toml") if root else None)
        if not url:
            raise UsageError("no --url given and no [tool.codegen] spec-url in pyproject.toml")
        source, raw = url, fetch.download(url)
    document, new = fetch.validate(
        raw, source, constraints=constraints(args), envelope=envelope(args)
    )
    old: Spec | None = None
    if target.exists():
        old_document = loader.load_spec(target)
        if old_document == document:
            print(f"spec unchanged: {target} already holds {source}")
            return 0
        try:
            old = parser.parse(
                old_document, str(target), constraints=new.constraints, envelope=envelope(args)
            )
        except SpecError:
            old = None  # the committed spec was unusable; the new one replaces it
    report = diff.compare(old, new) if old is not None else None
    if report is not None and args.fail_on_breaking and report.has_breaking:
        sys.stdout.write(diff.render(report, "text", str(target), source))
        count = report.count("breaking") + report.count("source")
        print(
            f"error: {source} has {count} breaking change{'s'[:count != 1]} for code that uses "
            f"the package; {target} was left as it was (review, then run without "
            "--fail-on-breaking to accept them)",
            file=sys.stderr,
        )
        return 1
    fetch.write_atomically(target, fetch.spec_bytes(document, raw, target))
    print(f"updated {target} from {source} ({len(new.webhooks)} webhooks)")
    if report is not None:
        sys.stdout.write(diff.render(report, "text", str(target), source))
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    report = diff.compare(read_spec(args.old, args), read_spec(args.new, args))
    sys.stdout.write(diff.render(report, args.format, str(args.old), str(args.new)))
    return 1 if args.fail_on_breaking and report.has_breaking else 0


def build_parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="python -m codegen", description=__doc__)
    commands = cli.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "--spec", type=Path, default=None,
            help=f"JSON or YAML spec (default: {DEFAULT_SPEC} of the repository)",
        )  # fmt: skip
        add_constraints(sub)
        sub.add_argument(
            "--envelope", choices=sorted(ENVELOPES), default=None,
            help="how the vendor wraps its events; default: [tool.codegen] envelope, else "
            "inferred from the spec",
        )  # fmt: skip
        return sub

    def add_constraints(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--constraints",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="enforce the spec's value constraints (lengths, patterns, bounds) in the "
            "models; default: [tool.codegen] constraints, else off (a tolerant reader)",
        )

    gen = add("generate", "write the project (metadata and package) for every webhook in the spec")
    gen.add_argument(
        "--out",
        type=Path,
        default=None,
        help="project folder to (re)build: absent, empty, or one this generator wrote",
    )
    gen.add_argument("--package", default=DEFAULT_PACKAGE, help="import name of the package")
    gen.set_defaults(run=cmd_generate)
    check = add("check", "exit 1 with a diff when the committed project is stale")
    check.add_argument("--out", type=Path, default=None, help="project folder to compare")
    check.add_argument("--package", default=DEFAULT_PACKAGE, help="import name of the package")
    check.set_defaults(run=cmd_check)
    scaffold = add("scaffold", "write a module of your own with a stub for every webhook")
    scaffold.add_argument("path", type=Path, help="file to create (never overwritten)")
    scaffold.add_argument("--package", default=DEFAULT_PACKAGE, help="generated package name")
    scaffold.set_defaults(run=cmd_scaffold)
    update = add("update-spec", "replace the spec with a newer one, only if it is a usable spec")
    where = update.add_mutually_exclusive_group()
    where.add_argument("--url", help="download from here (default: [tool.codegen] spec-url)")
    where.add_argument("--from", dest="from_file", type=Path, help="take this file instead")
    update.add_argument(
        "--fail-on-breaking", action="store_true",
        help="exit 1 and leave the spec as it was when the new one breaks consumers",
    )  # fmt: skip
    update.set_defaults(run=cmd_update_spec)
    compare = commands.add_parser(
        "diff", help="report the changes between two specs, breaking or compatible"
    )
    compare.add_argument("old", type=Path)
    compare.add_argument("new", type=Path)
    compare.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    add_constraints(compare)
    compare.add_argument(
        "--fail-on-breaking", action="store_true", help="exit 1 when a change is breaking"
    )
    compare.set_defaults(run=cmd_diff)
    return cli


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "spec", False) is None:
            # update-spec writes the spec: where it belongs, whether or not it exists yet.
            updating = args.run is cmd_update_spec
            args.spec = default_path(DEFAULT_SPEC) if updating else spec_path(args)
        if getattr(args, "out", False) is None:
            args.out, args.out_is_default = out_path(args), project_root() is not None
        code: int = args.run(args)
        return code
    except SpecError as exc:
        count = len(exc.problems)
        print(f"error: the spec cannot be used ({count} problem{'s'[:count != 1]}):", file=sys.stderr)
        print(str(exc), file=sys.stderr)
        return 2
    except (UsageError, GenerationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
