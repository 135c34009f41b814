"""The pass/fail bookkeeping shared by the Python parity tests (tests/*.py).

Each named check prints one line, "ok   WHAT" or "FAIL WHAT"; FAILS collects the failed ones
for the script's summary and exit status.
"""

FAILS = []


def log(msg):
    print(msg, flush=True)


def check(cond, what):
    log(("ok   " if cond else "FAIL ") + what)
    if not cond:
        FAILS.append(what)
    return cond
