"""labkit: the helper library behind the GenAI-on-EKS workshop notebooks.

Start a lab with :func:`setup`, then use the domain modules (``labkit.checks``,
``labkit.targets`` and, in later weeks, cluster, serving, bench ...).
"""

from labkit.context import LabContext, current, setup
from labkit.errors import LabkitError

__version__ = "0.1.0"

__all__ = ["LabContext", "LabkitError", "__version__", "current", "setup"]
