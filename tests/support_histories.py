"""Histories made for the checker tests and benchmarks: generated from a sequential model, so they
are linearizable by construction, with anomalies injected where a test asks for them."""
import random


def kv_history(n_ops, keys, processes, seed, info_rate=0.0, crash_rate=0.0):
    """A key-value history of ``n_ops`` operations by ``processes`` concurrent clients, each
    operation taking effect at one instant inside its interval (so it is linearizable).
    ``info_rate`` of the writes end with an unknown outcome (some took effect, some not)."""
    rng = random.Random(seed)
    store = {}
    records = []
    t = 0.0
    pending = {}            # process -> (op record, effect done?, result)
    done = 0
    while done < n_ops or pending:
        t += rng.random()
        free = [p for p in range(processes) if p not in pending]
        if free and done < n_ops and (not pending or rng.random() < 0.6):
            p = rng.choice(free)
            k = f"k{rng.randrange(keys)}"
            kind = rng.choice(("read", "write", "cas"))
            if kind == "read":
                value = [k, None]
            elif kind == "write":
                value = [k, rng.randrange(5)]
            else:
                value = [k, [rng.randrange(5), rng.randrange(5)]]
            records.append({"process": p, "type": "invoke", "f": kind, "value": value, "time": t})
            pending[p] = [kind, value, False, None]
            done += 1
            continue
        p = rng.choice(list(pending))
        kind, value, effected, result = pending[p]
        if not effected:
            # take effect now (the linearization point), complete later
            k = value[0]
            if kind == "read":
                result = [k, store.get(k)]
                status = "ok"
            elif kind == "write":
                store[k] = value[1]
                status = "ok"
            else:
                old, new = value[1]
                if store.get(k) == old:
                    store[k] = new
                    status = "ok"
                else:
                    status = "fail"
            pending[p] = [kind, value, True, (status, result)]
            continue
        status, result = result
        del pending[p]
        if kind != "read" and rng.random() < info_rate:
            status = "info"
        records.append({"process": p, "type": status, "f": kind,
                        "value": result if kind == "read" else value, "time": t})
    return records
