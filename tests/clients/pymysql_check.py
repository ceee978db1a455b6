"""PyMySQL (a pure-Python driver) against a server: prints what it sees as
JSON, so that the output through lockstep can be compared with the output
against the master directly. Usage: pymysql_check.py PORT USER PASSWORD"""

import json
import sys

import pymysql
from pymysql.constants import CLIENT


def main():
    port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    conn = pymysql.connect(host="127.0.0.1", port=port, user=user, password=password,
                           database="fx", charset="utf8mb4",
                           client_flag=CLIENT.MULTI_STATEMENTS, autocommit=True)
    out = {}
    with conn.cursor() as cur:
        cur.execute("SELECT * FROM types ORDER BY id")
        out["description"] = [list(d) for d in cur.description]
        out["rows"] = [[repr(v) for v in row] for row in cur.fetchall()]
        cur.execute("SELECT %s, %s, %s, %s", ("quote ' and \\", None, 1.5, b"\x00\xff"))
        out["params"] = [repr(v) for v in cur.fetchone()]
        cur.execute("CREATE TEMPORARY TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20))")
        out["executemany"] = cur.executemany("INSERT INTO t (v) VALUES (%s)", ["a", "b", "c"])
        out["lastrowid"] = cur.lastrowid
        cur.execute("SELECT 1 AS a; SELECT v FROM t ORDER BY id; UPDATE t SET v = 'z' WHERE id > 1")
        sets = []
        while True:
            sets.append({"rows": [list(r) for r in cur.fetchall()], "rowcount": cur.rowcount})
            if not cur.nextset():
                break
        out["multi"] = sets
        # Every result of a response carries its own warning count and
        # status flags, also a result set followed by another result.
        cur.execute("CREATE OR REPLACE PROCEDURE fx.warn_p() "
                    "BEGIN SELECT 1/0 AS x; SELECT 2 AS y; END")
        for sql in ["SELECT 1/0 AS x; SELECT CAST('9x' AS SIGNED) AS y, 2; DO 1",
                    "SELECT CAST('9x' AS SIGNED) AS y; SELECT 1; DO 1/0",
                    "CALL fx.warn_p()"]:
            results = []
            cur.execute(sql)
            while True:
                result = cur._result
                results.append({"rows": [list(r) for r in cur.fetchall()],
                                "warnings": result.warning_count,
                                "status": result.server_status})
                if not cur.nextset():
                    break
            out["results of " + sql] = results
        # The client's own user, as MariaDB names it, also in written rows.
        cur.execute("SELECT USER(), SESSION_USER(), SYSTEM_USER(), 'USER()'")
        out["user"] = {"columns": [d[0] for d in cur.description],
                       "row": list(cur.fetchone())}
        cur.execute("INSERT INTO t (v) VALUES (USER())")
        cur.execute("SELECT v FROM t WHERE id = LAST_INSERT_ID()")
        out["user_written"] = cur.fetchone()[0]
        errors = []
        for sql in ["SELECT * FROM nosuch", "SELEC 1", "INSERT INTO t (id) VALUES (1)"]:
            try:
                cur.execute(sql)
            except pymysql.MySQLError as e:
                errors.append([e.args[0], e.args[1]])
        out["errors"] = errors
        cur.execute("SELECT 1/0")
        cur.fetchall()
        out["warnings"] = [list(w) for w in conn.show_warnings()]
        conn.ping()
        conn.select_db("mysql")
        cur.execute("SELECT DATABASE()")
        out["db"] = cur.fetchone()[0]
    conn.close()
    try:
        pymysql.connect(host="127.0.0.1", port=port, user=user, password=password + "x")
    except pymysql.MySQLError as e:
        out["bad_password"] = e.args[0]
    # CLIENT_INTERACTIVE gives the session interactive_timeout as wait_timeout.
    timeouts = []
    for flag in (0, CLIENT.INTERACTIVE):
        c = pymysql.connect(host="127.0.0.1", port=port, user=user, password=password,
                            client_flag=flag)
        with c.cursor() as cur:
            cur.execute("SELECT @@wait_timeout")
            timeouts.append(cur.fetchone()[0])
        c.close()
    out["wait_timeout"] = timeouts
    print(json.dumps(out, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
