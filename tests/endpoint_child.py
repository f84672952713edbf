"""The processes test_endpoint_faults.py runs: a serving writer, and a client that stalls.

``python endpoint_child.py writer DB CONFIG_JSON`` opens DB (journaled), stores
``config["bars"]`` generated bars (half flushed), serves it and prints ``READY <uri> <token>``.
It also holds ``DB.held`` open for writing without serving it. Then it obeys stdin, one command
a line, and answers on stdout (each line flushed when the step is complete):

    append N    append the next N bars; ACK <total>: their appends have returned
    flush       FLUSHED <total>: every bar so far is in the table
    feed        append bars without end, printing ACK <total> every 1,000 (until killed)
    close       close the warehouse; CLOSED

``python endpoint_child.py client URI TOKEN COMMAND`` asks for the result of COMMAND (a Flight
SQL command, in hex), reads its first batch, prints ``GOT <rows>`` and waits to be killed, the
rest of the stream unread.

Bar ``j`` is of symbol ``S<j % SYMBOLS>`` at minute ``j // SYMBOLS`` from 2025-11-21 14:30Z:
the parent computes any bar the child stored.
"""

from __future__ import annotations

import json
import sys
import time

SYMBOLS = 50
T0 = 1_763_735_400_000_000
MINUTE = 60_000_000


def bar(j: int) -> tuple[str, int, float, float, float, float, float]:
    price = 100.0 + (j % 97)
    return f"S{j % SYMBOLS}", T0 + (j // SYMBOLS) * MINUTE, price, price + 1, price - 1, price, 10.0


def writer(db: str, config: dict[str, object]) -> None:
    import pyarrow as pa

    from warehouse import BAR_SCHEMA, Warehouse
    from warehouse.endpoint import Limits

    total = int(config.get("bars", 0))  # type: ignore[call-overload]
    wh = Warehouse(db, journal=True, flush_interval=float(config.get("flush_interval", 0.2)))  # type: ignore[arg-type]
    held = Warehouse(f"{db}.held", flush_interval=None)
    if total:
        rows = [bar(j) for j in range(total)]
        columns = list(zip(*rows, strict=True))
        table = pa.table({name: pa.array(list(col)) for name, col in zip(
            ["symbol", "ts", "open", "high", "low", "close", "volume"], columns, strict=True)})
        table = table.set_column(1, "ts", table.column("ts").cast(BAR_SCHEMA.field("ts").type))
        wh.extend(table.slice(0, total // 2))
        wh.flush()
        wh.extend(table.slice(total // 2))
    endpoint = wh.serve(limits=Limits(**config.get("limits", {})))  # type: ignore[arg-type]
    print(f"READY {endpoint.uri} {endpoint.token}", flush=True)
    for line in sys.stdin:
        command, *arguments = line.split()
        if command == "append":
            for _ in range(int(arguments[0])):
                wh.append(*bar(total))
                total += 1
            print(f"ACK {total}", flush=True)
        elif command == "flush":
            wh.flush()
            print(f"FLUSHED {total}", flush=True)
        elif command == "feed":
            while True:
                wh.append(*bar(total))
                total += 1
                if total % 1_000 == 0:
                    print(f"ACK {total}", flush=True)
        elif command == "close":
            wh.close()
            held.close()
            print("CLOSED", flush=True)
            return


def client(uri: str, token: str, command: str) -> None:
    import pyarrow.flight as flight  # only: importing warehouse would take seconds

    options = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {token}".encode())])
    connection = flight.FlightClient(uri)
    info = connection.get_flight_info(
        flight.FlightDescriptor.for_command(bytes.fromhex(command)), options)
    reader = connection.do_get(info.endpoints[0].ticket, options)
    chunk = reader.read_chunk()
    print(f"GOT {chunk.data.num_rows}", flush=True)
    time.sleep(3600)


if __name__ == "__main__":
    if sys.argv[1] == "writer":
        writer(sys.argv[2], json.loads(sys.argv[3]))
    else:
        client(*sys.argv[2:5])
