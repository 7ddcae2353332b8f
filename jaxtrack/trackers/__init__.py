"""Built-in trackers; importing this package registers them with ``make_tracker``."""
from jaxtrack.trackers import siamfc  # noqa: F401
from jaxtrack.trackers import gradnet  # noqa: F401
from jaxtrack.trackers import atom  # noqa: F401
from jaxtrack.trackers import dat  # noqa: F401
from jaxtrack.trackers import tadt  # noqa: F401
