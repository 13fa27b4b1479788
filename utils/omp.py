"""OpenMP threads that spin only briefly when they wait. Import this module before ``torch``.

torch's CPU kernels run on OpenMP (GNU libgomp) threads, which by default spin for a while at the
end of each parallel region waiting for work. When another busy program shares the cores, a
spinning thread holds a core that a descheduled sibling needs, and every region waits for that
sibling: the default training step on this project's 2-core CPU went from 0.73 s alone to 2.52 s
beside one ``python -c "while True: pass"``. With ``OMP_WAIT_POLICY=PASSIVE`` waiting threads
sleep: 1.46 s beside the busy program, and 0.73 s alone as before (``python -m evaluation.speed
--parts train``; docs/study.md, "Threads on a shared CPU"). libgomp reads the policy once, when
torch loads it, hence the import order. A policy the user set wins.
"""
from __future__ import annotations

import os

SPIN_COUNT = "30000"

if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
