"""A child process for the crash and multi-process tests: records decisions from several threads and
prints `recorded <decision_id>` (flushed) each time `record` has returned.

Usage: python recorder.py URL CHAIN_ID SPOOL_DIR COUNT_PER_THREAD THREADS
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audit.decisions import admission_record, gdpr_denial, pipl_rewrite, routing_record
from policyengine.audit import AuditWriter


def main() -> None:
    url, chain_id, spool_dir, per_thread, threads = sys.argv[1:6]
    lock = threading.Lock()
    writer = AuditWriter.open(url, chain_id=chain_id, spool_dir=spool_dir)
    print(f"started {writer.chain_id}", flush=True)

    def work(t: int) -> None:
        for n in range(int(per_thread)):
            if n % 2:
                record = admission_record(gdpr_denial(t * 1_000_000 + n), n)
            else:
                record = routing_record(pipl_rewrite(t * 1_000_000 + n))
            writer.record(record)
            with lock:
                sys.stdout.write(f"recorded {record.decision.decision_id}\n")
                sys.stdout.flush()

    workers = [threading.Thread(target=work, args=(t,)) for t in range(int(threads))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    writer.close()
    print("done", flush=True)


if __name__ == "__main__":
    main()
