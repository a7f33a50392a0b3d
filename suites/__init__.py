"""The shipped suites, one file per area, shipped in the wheel as the package ``pytest_kready.suites``
(pyproject's package-dir mapping) and collected by ``pytest --kready`` when no test path is given. Each suite is
thin: fixtures, markers, and recording what its check module (``pytest_kready/checks/<area>.py``) decided."""
