"""Package layout: one installed namespace, `dumpdeck`, built from the repository's top-level folders.

    dumpdeck/   -> dumpdeck            (version, `python -m dumpdeck`)
    backend/    -> dumpdeck.backend    (the engine)
    cli/        -> dumpdeck.cli        (the `dumpdeck` command)
    tui/        -> dumpdeck.tui        (the console)
    demo/       -> dumpdeck.demo       (demo sandbox, sample data)
    themes/     -> dumpdeck.themes

Every subpackage under these folders is found automatically; metadata lives in pyproject.toml.
"""

from setuptools import find_packages, setup

ROOTS = ("backend", "cli", "tui", "demo", "themes")

packages = ["dumpdeck"]
package_dir = {"dumpdeck": "dumpdeck"}
for root in ROOTS:
    packages.append(f"dumpdeck.{root}")
    package_dir[f"dumpdeck.{root}"] = root
    packages += [f"dumpdeck.{root}.{sub}" for sub in find_packages(root)]

setup(
    packages=packages,
    package_dir=package_dir,
    package_data={name: ["*.tcss"] for name in packages},
)
