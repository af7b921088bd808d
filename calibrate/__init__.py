"""calibrate: measure a host and write the profile `simulate` uses instead of datasheet guesses.

One module per measuring method (torch steps, JAX compile, TPU AOT compile, collectives, micro-benchmarks);
all of them write sections of the profile schema that sim/profile.py defines. Heavy libraries are imported
inside each method, so `import calibrate` needs only the simulator's own dependencies.
"""
