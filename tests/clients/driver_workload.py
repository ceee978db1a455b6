"""A driver's own kind of workload against a server, printing everything the
application sees as JSON, so that the output through lockstep can be
compared with the output against MariaDB directly.

Usage: driver_workload.py DRIVER PORT USER PASSWORD SEED
  DRIVER pymysql:   PyMySQL as applications use it, autocommit off (its
                    default): every statement, reads too, inside transactions
                    the application ends with commit() or rollback().
  DRIVER connector: mysql-connector-python with server-side prepared
                    statements (the binary protocol), autocommit off too.
The seed picks the values written; the same seed gives the same workload."""

import datetime
import decimal
import json
import random
import sys


def pymysql_workload(port, user, password, rng):
    import pymysql

    out = []
    conn = pymysql.connect(host="127.0.0.1", port=port, user=user, password=password,
                           charset="utf8mb4")
    cur = conn.cursor()

    def run(sql, args=None):
        try:
            affected = cur.execute(sql, args)
            rows = [[repr(v) for v in r] for r in cur.fetchall()] if cur.description else None
            out.append({"sql": sql, "affected": affected, "lastrowid": cur.lastrowid,
                        "rows": rows})
        except pymysql.MySQLError as e:
            out.append({"sql": sql, "error": [e.args[0], e.args[1]]})

    # A session that only read first: DDL must not wait for it.
    run("SELECT 1")
    run("CREATE DATABASE IF NOT EXISTS dw")
    run("CREATE TABLE dw.accounts (id INT AUTO_INCREMENT PRIMARY KEY, "
        "owner VARCHAR(40) NOT NULL UNIQUE, balance DECIMAL(12,2) NOT NULL, "
        "opened DATETIME NOT NULL) ENGINE=InnoDB")
    conn.commit()
    owners = [f"owner-{i}-{rng.randrange(10**6)}" for i in range(12)]
    for owner in owners:
        run("INSERT INTO dw.accounts (owner, balance, opened) VALUES (%s, %s, %s)",
            (owner, decimal.Decimal(rng.randrange(100000)) / 100,
             datetime.datetime(2026, 1, 1) + datetime.timedelta(minutes=rng.randrange(10**5))))
    conn.commit()
    for _ in range(40):
        a, b = rng.sample(range(1, len(owners) + 1), 2)
        amount = decimal.Decimal(rng.randrange(1, 5000)) / 100
        choice = rng.random()
        run("SELECT balance FROM dw.accounts WHERE id = %s FOR UPDATE", (a,))
        run("UPDATE dw.accounts SET balance = balance - %s WHERE id = %s", (amount, a))
        run("UPDATE dw.accounts SET balance = balance + %s WHERE id = %s", (amount, b))
        if choice < 0.2:
            # A duplicate inside the transaction: the statement fails, the
            # transaction goes on.
            run("INSERT INTO dw.accounts (owner, balance, opened) VALUES (%s, 0, NOW())",
                (owners[a - 1],))
        if choice < 0.35:
            conn.rollback()
            out.append({"rollback": True})
        else:
            conn.commit()
            out.append({"commit": True})
        run("SELECT id, balance FROM dw.accounts ORDER BY id")
    # executemany's multi-row INSERT, then a read through an unbuffered cursor.
    try:
        affected = cur.executemany(
            "INSERT INTO dw.accounts (owner, balance, opened) VALUES (%s, %s, %s)",
            [(f"batch-{i}", i, datetime.datetime(2026, 6, 1)) for i in range(5)])
        out.append({"executemany": affected, "lastrowid": cur.lastrowid})
    except pymysql.MySQLError as e:
        out.append({"executemany_error": [e.args[0], e.args[1]]})
    conn.commit()
    stream = conn.cursor(pymysql.cursors.SSCursor)
    stream.execute("SELECT id, owner, balance FROM dw.accounts ORDER BY id")
    out.append({"streamed": [[repr(v) for v in r] for r in stream.fetchall_unbuffered()]})
    stream.close()
    conn.commit()
    # Autocommit on for a while, as applications toggle it.
    conn.autocommit(True)
    run("UPDATE dw.accounts SET balance = 0 WHERE owner LIKE 'batch-%%'")
    run("DELETE FROM dw.accounts WHERE owner = 'batch-4'")
    conn.autocommit(False)
    run("SELECT @@autocommit, @@in_transaction")
    run("SELECT COUNT(*), SUM(balance) FROM dw.accounts")
    conn.commit()
    conn.close()
    return out


def connector_workload(port, user, password, rng):
    import mysql.connector

    out = []
    conn = mysql.connector.connect(host="127.0.0.1", port=port, user=user, password=password,
                                   use_pure=True, charset="utf8mb4",
                                   collation="utf8mb4_general_ci")
    plain = conn.cursor()
    plain.execute("CREATE DATABASE IF NOT EXISTS dc")
    plain.execute("CREATE TABLE dc.items (id INT AUTO_INCREMENT PRIMARY KEY, "
                  "name VARCHAR(40) NOT NULL UNIQUE, price DECIMAL(10,3), weight DOUBLE, "
                  "data VARBINARY(64), made DATE, at TIME(3), seen DATETIME(6), note TEXT) "
                  "ENGINE=InnoDB")
    conn.commit()
    cur = conn.cursor(prepared=True)

    def run(sql, args=()):
        try:
            cur.execute(sql, args)
            rows = [[repr(v) for v in r] for r in cur.fetchall()] if cur.description else None
            out.append({"sql": sql, "rowcount": cur.rowcount, "lastrowid": cur.lastrowid,
                        "columns": [d[0] for d in cur.description] if cur.description else None,
                        "rows": rows})
        except mysql.connector.Error as e:
            out.append({"sql": sql, "error": [e.errno, e.sqlstate, e.msg]})

    insert = ("INSERT INTO dc.items (name, price, weight, data, made, at, seen, note) "
              "VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
    for i in range(20):
        run(insert, (
            f"item-{i}-{rng.randrange(1000)}",
            decimal.Decimal(rng.randrange(10**6)) / 1000,
            rng.random() * 100,
            bytes(rng.randrange(256) for _ in range(rng.randrange(8))),
            datetime.date(2026, 1, 1) + datetime.timedelta(days=rng.randrange(365)),
            datetime.timedelta(seconds=rng.randrange(86400), microseconds=rng.randrange(1000) * 1000),
            datetime.datetime(2026, 3, 4, 5, 6, 7, rng.randrange(10**6)),
            rng.choice([None, "", "ünïcödé ✓", "quote ' and \\"]),
        ))
        if i % 7 == 6:
            conn.rollback()
            out.append({"rollback": True})
        elif i % 3 == 2:
            conn.commit()
            out.append({"commit": True})
    conn.commit()
    # The same prepared text again and again, with a duplicate among them.
    run(insert, ("item-dup", 1, 1.0, b"", None, None, None, None))
    run(insert, ("item-dup", 2, 2.0, b"", None, None, None, None))
    conn.commit()
    for lo in (0, 100, 500):
        run("SELECT id, name, price, weight, data, made, at, seen, note FROM dc.items "
            "WHERE price >= ? ORDER BY id", (lo,))
    run("UPDATE dc.items SET weight = weight * ? WHERE id % ? = 0", (2, 3))
    run("DELETE FROM dc.items WHERE name LIKE ?", ("item-1%",))
    conn.commit()
    run("SELECT COUNT(*), SUM(price), MAX(seen) FROM dc.items")
    conn.commit()
    cur.close()
    conn.close()
    return out


def main():
    driver, port, user, password, seed = sys.argv[1], int(sys.argv[2]), sys.argv[3], \
        sys.argv[4], int(sys.argv[5])
    rng = random.Random(seed)
    workload = {"pymysql": pymysql_workload, "connector": connector_workload}[driver]
    print(json.dumps(workload(port, user, password, rng), indent=1, default=str))


if __name__ == "__main__":
    main()
