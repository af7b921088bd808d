"""servesim: a discrete-event simulator of vLLM serving fleets on GPU and TPU.

Data flows scenario -> traffic -> fleet -> replica/scheduler -> step-cost model -> metrics -> report.
Each stage lives in its own subpackage so that a change has one obvious home.
"""

__version__ = "0.1.0"
