-- omen_hnsw scans: rows come in ascending distance within each batch, a
-- selective WHERE clause with LIMIT still gets its rows (the scan goes on
-- past ef_search), and omen.max_scan_tuples caps how far it goes.

SELECT setseed(0.25);
CREATE TABLE hs (id int PRIMARY KEY, cat int, v vector(16));
INSERT INTO hs
SELECT i, i % 100, (SELECT array_agg((random() * 10)::real) FROM generate_series(1, 16) WHERE i > 0)::vector
FROM generate_series(1, 5000) i;
CREATE INDEX hs_idx ON hs USING omen_hnsw (v) WITH (m = 8, ef_construction = 32);
ANALYZE hs;
SET enable_seqscan = off;
SET omen.hnsw_ef_search = 10;

-- the first ef_search rows are in exact ascending order
SELECT bool_and(d >= prev) AS ascending, count(*) AS n
FROM (SELECT d, lag(d, 1, 0::float8) OVER (ORDER BY n) AS prev
      FROM (SELECT v <-> '[5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5]' AS d, row_number() OVER () AS n
            FROM (SELECT v FROM hs ORDER BY v <-> '[5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5]' LIMIT 10) s) t) u;

-- 1% of rows match: LIMIT 10 still returns 10, and 50 returns all 50
EXPLAIN (COSTS OFF)
SELECT id FROM hs WHERE cat = 42 ORDER BY v <-> '[5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5]' LIMIT 10;
SELECT count(*) FROM (SELECT id FROM hs WHERE cat = 42
  ORDER BY v <-> '[5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5]' LIMIT 10) s;
SELECT count(*) FROM (SELECT id FROM hs WHERE cat = 42
  ORDER BY v <-> '[5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5]' LIMIT 100) s;
-- with no LIMIT the scan reaches every row
SELECT count(*) FROM (SELECT id FROM hs ORDER BY v <-> '[5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5]') s;
-- across batches the order is approximate: most of the way ascending
SELECT avg((d >= prev)::int) > 0.9 AS mostly_ascending
FROM (SELECT d, lag(d, 1, 0::float8) OVER (ORDER BY n) AS prev
      FROM (SELECT v <-> '[5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5]' AS d, row_number() OVER () AS n
            FROM (SELECT v FROM hs ORDER BY v <-> '[5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5]' LIMIT 1000) s) t) u;

-- the cap
SET omen.max_scan_tuples = 100;
SELECT count(*) FROM (SELECT id FROM hs ORDER BY v <-> '[5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5]') s;
SELECT count(*) FROM (SELECT id FROM hs WHERE cat = 42
  ORDER BY v <-> '[5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5]' LIMIT 10) s;
SET omen.max_scan_tuples = -1;
SELECT count(*) FROM (SELECT id FROM hs ORDER BY v <-> '[5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5]') s;
RESET omen.max_scan_tuples;
SET omen.max_scan_tuple = 5;

-- a query vector of the wrong length
SELECT id FROM hs ORDER BY v <-> '[1,2,3]' LIMIT 1;

-- the same query in one statement with a join (rescans)
SELECT count(*) FROM (SELECT q.id, n.id FROM hs q,
  LATERAL (SELECT id FROM hs ORDER BY v <-> q.v LIMIT 3) n WHERE q.id <= 20) s;

RESET omen.hnsw_ef_search;
RESET enable_seqscan;
DROP TABLE hs;
