"""jaxtrack: visual object trackers that learn from gradients, in JAX."""
from jaxtrack.core import Frame, TrackOutput, Tracker
from jaxtrack.trackers import available_trackers, make_tracker, register

__version__ = "0.1.0"
__all__ = ["Frame", "TrackOutput", "Tracker", "available_trackers", "make_tracker",
           "register", "__version__"]
