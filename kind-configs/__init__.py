"""The kind configurations of the reference profiles (baseline.yaml, hardened.yaml), shipped in the wheel as the
package ``pytest_kready.kind_configs`` (pyproject's package-dir mapping) and read through
``pytest_kready.resources``. Data only."""
