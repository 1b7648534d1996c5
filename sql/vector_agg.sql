-- avg(vector) and sum(vector), serial and in parallel plans.

CREATE TABLE va (g int, v vector(3));
INSERT INTO va VALUES (1, '[1,2,3]'), (1, '[3,4,5]'), (2, '[10,10,10]'), (2, NULL);
SELECT avg(v), sum(v) FROM va;
SELECT g, avg(v), sum(v) FROM va GROUP BY g ORDER BY g;
-- no rows, or only NULLs: NULL
SELECT avg(v), sum(v) FROM va WHERE false;
SELECT avg(v), sum(v) FROM va WHERE v IS NULL;
-- mixed lengths
SELECT avg(v::vector) FROM (VALUES ('[1,2]'::vector), ('[1,2,3]')) t(v);
SELECT sum(v::vector) FROM (VALUES ('[1,2]'::vector), ('[1,2,3]')) t(v);
-- overflow
SELECT sum(v) FROM (VALUES ('[3e38]'::vector), ('[3e38]')) t(v);
-- avg of large values does not overflow
SELECT avg(v) FROM (VALUES ('[3e38]'::vector), ('[3e38]')) t(v);
DROP TABLE va;

-- parallel plans: partial aggregates combined
CREATE TABLE vp (v vector(2));
INSERT INTO vp SELECT ARRAY[i % 10, 1]::vector FROM generate_series(1, 100000) i;
ANALYZE vp;
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
EXPLAIN (COSTS OFF) SELECT avg(v), sum(v) FROM vp;
SELECT avg(v), sum(v) FROM vp;
RESET max_parallel_workers_per_gather;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
DROP TABLE vp;
