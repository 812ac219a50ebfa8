"""Imported by the extraction pool's fork server, and nowhere else: it loads what the workers
run (trafilatura and lxml too, which ``monitor.extract.text`` would load only with the first
page), builds the gazetteer and compiles the patterns once, then freezes every object made so
far (``gc.freeze``).

Each worker is forked from the server and starts with these pages shared. Frozen, they stay
shared: a garbage collection in the worker would otherwise write into every object the server
made and so copy nearly all of its pages (~15 MB more per worker, measured).
"""

import gc

import monitor.extract.html  # noqa: F401 - loaded here for the workers to share
from monitor.extract import worker

worker.warm_up()
gc.freeze()
