-- omen_diskann scans: rows come in ascending full-precision distance within
-- each re-scored group, a selective WHERE clause with LIMIT still gets its
-- rows (the scan goes on past its list), and omen.max_scan_tuples caps it.

SELECT setseed(0.25);
CREATE TABLE ds (id int PRIMARY KEY, cat int, v vector(16));
INSERT INTO ds
SELECT i, i % 100, (SELECT array_agg((random() * 10)::real) FROM generate_series(1, 16) WHERE i > 0)::vector
FROM generate_series(1, 5000) i;
CREATE INDEX ds_idx ON ds USING omen_diskann (v) WITH (max_neighbors = 16, build_list_size = 40);
ANALYZE ds;
SET enable_seqscan = off;
SET omen.diskann_search_list_size = 10;

-- the first group (the whole first list) is in exact ascending order
SELECT bool_and(d >= prev) AS ascending, count(*) AS n
FROM (SELECT d, lag(d, 1, 0::float8) OVER (ORDER BY n) AS prev
      FROM (SELECT v <-> '[5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5]' AS d, row_number() OVER () AS n
            FROM (SELECT v FROM ds ORDER BY v <-> '[5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5]' LIMIT 10) s) t) u;

-- 1% of rows match: LIMIT 10 still returns 10, and 50 returns all 50
EXPLAIN (COSTS OFF)
SELECT id FROM ds WHERE cat = 42 ORDER BY v <-> '[5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5]' LIMIT 10;
SELECT count(*) FROM (SELECT id FROM ds WHERE cat = 42
  ORDER BY v <-> '[5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5]' LIMIT 10) s;
SELECT count(*) FROM (SELECT id FROM ds WHERE cat = 42
  ORDER BY v <-> '[5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5]' LIMIT 100) s;
-- with no LIMIT the scan reaches every row
SELECT count(*) FROM (SELECT id FROM ds ORDER BY v <-> '[5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5]') s;
-- across batches the order is approximate: most of the way ascending
SELECT avg((d >= prev)::int) > 0.9 AS mostly_ascending
FROM (SELECT d, lag(d, 1, 0::float8) OVER (ORDER BY n) AS prev
      FROM (SELECT v <-> '[5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5]' AS d, row_number() OVER () AS n
            FROM (SELECT v FROM ds ORDER BY v <-> '[5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5]' LIMIT 1000) s) t) u;

-- the cap
SET omen.max_scan_tuples = 100;
SELECT count(*) FROM (SELECT id FROM ds ORDER BY v <-> '[5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5]') s;
-- 1% of rows match, so about one of the 100 rows the scan may return does
-- (which ones is approximate): the LIMIT is not reached
SELECT count(*) < 10 AS capped FROM (SELECT id FROM ds WHERE cat = 42
  ORDER BY v <-> '[5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5]' LIMIT 10) s;
SET omen.max_scan_tuples = -1;
SELECT count(*) FROM (SELECT id FROM ds ORDER BY v <-> '[5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5]') s;
RESET omen.max_scan_tuples;
SET omen.max_scan_tuple = 5;

-- a query vector of the wrong length
SELECT id FROM ds ORDER BY v <-> '[1,2,3]' LIMIT 1;

-- the same query in one statement with a join (rescans)
SELECT count(*) FROM (SELECT q.id, n.id FROM ds q,
  LATERAL (SELECT id FROM ds ORDER BY v <-> q.v LIMIT 3) n WHERE q.id <= 20) s;

-- a full scan returns every row exactly once
SET omen.max_scan_tuples = -1;
SELECT count(*), count(DISTINCT id) FROM (SELECT id FROM ds ORDER BY v <-> '[5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5]') s;
RESET omen.max_scan_tuples;

-- re-scoring in groups of 5 out of a list of 40: each group of 5 is in
-- exact order, and the first group holds the exact nearest row
SET omen.diskann_search_list_size = 40;
SET omen.diskann_rerank = 5;
SELECT bool_and(d >= prev OR n % 5 = 1) AS ascending_in_groups, count(*) AS n
FROM (SELECT d, n, lag(d, 1, 0::float8) OVER (ORDER BY n) AS prev
      FROM (SELECT v <-> '[5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5]' AS d, row_number() OVER () AS n
            FROM (SELECT v FROM ds ORDER BY v <-> '[5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5]' LIMIT 40) s) t) u;
SELECT (SELECT id FROM ds ORDER BY v <-> '[5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5]' LIMIT 1) =
       (SELECT id FROM ds ORDER BY (v <-> '[5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5]') + 0 LIMIT 1) AS nearest_first;
RESET omen.diskann_rerank;

RESET omen.diskann_search_list_size;
RESET enable_seqscan;
DROP TABLE ds;
