"""A function's init without garbage collection: each handler module imports this first, and
``jobkit.wiring.entry.lambda_entry`` (applied once the handler is built) resumes collection.

An init allocates some 120,000 objects that live as long as the container: modules,
classes, pydantic's validators, botocore's service models. The collector, run again and
again while they pile up, finds almost nothing to free (under 1,000 objects in the
processor's init) and cost about 60 ms of each cold start (`make bench`: the processor's
import, with and without it). When the init ends, what it allocated is frozen
(``gc.freeze``): the collections of later invocations never traverse it again. What the
init left unreachable (about 27,000 small objects, 1 MB) stays, as it would until the
first full collection.
"""

import gc

# Collection resumes only if it ran before: a process that turned it off keeps it off.
_RESUME = gc.isenabled()
gc.disable()


def resume_collection() -> None:
    """The init is over: freeze what it allocated and collect as usual from now on."""
    if _RESUME and not gc.isenabled():
        gc.freeze()
        gc.enable()
