"""Step costs: the declared interfaces (base.py), the device-time models a runtime wraps (roofline.py, a
measured profile in profiled.py), a constant step time (constant.py), TP collectives (collectives.py), the
scenario's cost_model section (spec.py) and the factory that builds what a scenario asks for (factory.py)."""
