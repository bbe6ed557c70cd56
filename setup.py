"""Package discovery for setuptools; everything else is in pyproject.toml.

Code packages are found under workers/, so a new one is packaged without a list to keep.
The design card keeps schemas/, topics/ and data/ at the top level: they map into the
package as data packages, so an installed wheel (the Docker image) finds them exactly as a
checkout does.
"""

from setuptools import find_packages, setup

DATA_PACKAGES = {
    "fleetserve.schemas": "schemas",
    "fleetserve.topic_specs": "topics",
    "fleetserve.datasets": "data",
}

setup(
    package_dir={"": "workers", **DATA_PACKAGES},
    packages=[*find_packages("workers"), *DATA_PACKAGES],
)
