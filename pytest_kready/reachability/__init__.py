"""Reachability: models of namespaces × pods × ports, probed fast and stably, compared as truth tables.

Shaped like the upstream netpol e2e code (model → reachability → truth table → probe):

* ``Model`` (model.py): namespaces × pods × ports × protocols × paths, with the manifests that make it real;
* ``TruthTable`` (truthtable.py): expected and observed tables, and the grids a failure shows;
* probe.py: one exec per source pod probing all of its targets at once (``nc`` / ``agnhost connect``);
* sampling.py: which rounds count, how a target is shown alive (``Alive``), what a cell is (``decide``);
* ``Engine``, ``Lab``, ``Result`` (engine.py): deploy, observe in rounds, compare, report;
* the ``kready_reachability`` fixture (fixture.py).

Importing this package imports no Kubernetes client; the exec path does, when first used.
"""

from .engine import Engine, Lab, Result, Source
from .model import Model, NamespaceModel, PodModel, Target
from .sampling import Alive
from .truthtable import TruthTable

__all__ = ["Alive", "Engine", "Lab", "Model", "NamespaceModel", "PodModel", "Result", "Source", "Target",
           "TruthTable"]
