"""What Tessera reads from YAML besides dbt (sync declarations, expectation suites): the files of
a folder, and the one error that reports every problem of every file at once, each as
``file: path: why``."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import yaml


class DeclarationError(ValueError):
    """One or more declarations are invalid; the message lists each problem."""

    #: What was declared, for the message ("sync declarations").
    subject: ClassVar[str] = "declarations"

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"invalid {self.subject}:\n  " + "\n  ".join(problems))
        self.problems = problems


def yaml_documents(
    project: Path, folder: Path | str, problems: list[str]
) -> Iterator[tuple[str, Any]]:
    """(label, document) of each ``*.yml`` and ``*.yaml`` file of ``project/folder``, in name
    order; the label is the path from the project. A file that is not YAML is a problem."""
    directory = project / folder
    for path in sorted(directory.glob("*.yml")) + sorted(directory.glob("*.yaml")):
        label = path.relative_to(project).as_posix()
        try:
            yield label, yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            problems.append(f"{label}: not valid YAML: {exc}")
