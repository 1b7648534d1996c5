-- omen_hnsw: creating indexes, options and their limits, what is indexed,
-- and which queries the planner sends to the index.

-- 10,000 vectors of 32 dimensions around 20 centres (deterministic)
SELECT setseed(0.5);
CREATE TABLE hb_centres AS
SELECT g, array_agg((random() * 10)::real ORDER BY d) AS c
FROM generate_series(1, 20) g, generate_series(1, 32) d GROUP BY g;
CREATE TABLE hb (id int PRIMARY KEY, cat int, v vector(32));
INSERT INTO hb
SELECT i, i % 100,
       (SELECT array_agg(c[d] + (random() - 0.5)::real * 2 ORDER BY d)
        FROM hb_centres, generate_series(1, 32) d WHERE g = 1 + i % 20)::vector
FROM generate_series(1, 10000) i;
ANALYZE hb;

CREATE INDEX hb_l2 ON hb USING omen_hnsw (v);
SELECT live_nodes, deleted_nodes, heap_tids, dimensions, m, ef_construction,
       storage, metric, entry_level = max_level AS entry_on_top
FROM omen_hnsw_info('hb_l2');

-- the planner uses it for ORDER BY <-> LIMIT, and for nothing else
EXPLAIN (COSTS OFF) SELECT id FROM hb ORDER BY v <-> '[1,2,3,4,5,6,7,8,9,10,1,2,3,4,5,6,7,8,9,10,1,2,3,4,5,6,7,8,9,10,1,2]' LIMIT 10;
EXPLAIN (COSTS OFF) SELECT id FROM hb ORDER BY v <+> '[1,2,3,4,5,6,7,8,9,10,1,2,3,4,5,6,7,8,9,10,1,2,3,4,5,6,7,8,9,10,1,2]' LIMIT 10;
EXPLAIN (COSTS OFF) SELECT id FROM hb ORDER BY v <-> '[1,2,3,4,5,6,7,8,9,10,1,2,3,4,5,6,7,8,9,10,1,2,3,4,5,6,7,8,9,10,1,2]' DESC LIMIT 10;
EXPLAIN (COSTS OFF) SELECT count(*) FROM hb WHERE v IS NOT NULL;

-- each operator class serves its own operator
CREATE INDEX hb_ip ON hb USING omen_hnsw (v vector_ip_ops);
CREATE INDEX hb_cos ON hb USING omen_hnsw (v vector_cosine_ops) WITH (m = 8, ef_construction = 32);
CREATE INDEX hb_l1 ON hb USING omen_hnsw (v vector_l1_ops) WITH (storage = half);
SELECT i.relname, x.metric, x.m, x.ef_construction, x.storage, x.live_nodes
FROM pg_class i, omen_hnsw_info(i.oid) x
WHERE i.relname IN ('hb_l2', 'hb_ip', 'hb_cos', 'hb_l1') ORDER BY i.relname;
EXPLAIN (COSTS OFF) SELECT id FROM hb ORDER BY v <#> (SELECT v FROM hb WHERE id = 1) LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM hb ORDER BY v <=> (SELECT v FROM hb WHERE id = 1) LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM hb ORDER BY v <+> (SELECT v FROM hb WHERE id = 1) LIMIT 5;
-- half storage halves the vectors (at 32 dimensions the neighbour lists,
-- 6 bytes per slot, are most of the index: 0.82 of float's size)
SELECT (SELECT size_bytes FROM omen_hnsw_info('hb_l1'))::float /
       (SELECT size_bytes FROM omen_hnsw_info('hb_l2')) BETWEEN 0.6 AND 0.9 AS half_is_smaller;

-- every operator finds vectors as their own nearest neighbours: 20 of
-- them, one from each cluster, with a wide search list.  The 20 clusters
-- are islands far apart, and a walk that descends into the wrong one can
-- stay there (pgvector's HNSW does the same here: 12 to 280 of the 10,000
-- rows missed themselves over four builds at ef_search 200), so a rare
-- miss is allowed: at least 18 of the 20.
SET enable_seqscan = off;
SET omen.hnsw_ef_search = 200;
SELECT count(*) FILTER (WHERE n = q.id) >= 18 AS self_first_l2 FROM hb q,
  LATERAL (SELECT id AS n FROM hb ORDER BY v <-> q.v LIMIT 1) s WHERE q.id BETWEEN 101 AND 120;
SELECT count(*) FILTER (WHERE n = q.id) >= 18 AS self_first_cos FROM hb q,
  LATERAL (SELECT id AS n FROM hb ORDER BY v <=> q.v LIMIT 1) s WHERE q.id BETWEEN 101 AND 120;
SELECT count(*) FILTER (WHERE n = q.id) >= 18 AS self_first_l1 FROM hb q,
  LATERAL (SELECT id AS n FROM hb ORDER BY v <+> q.v LIMIT 1) s WHERE q.id BETWEEN 101 AND 120;
-- over all 10,000 rows at ef_search 40: walks down the upper layers that
-- keep a few nodes a layer (4 for inserts, 2 for scans) keep the right
-- cluster in view; with greedy walks (one node a layer, as HNSW describes
-- it) 24 rows missed themselves here, now 7
SET omen.hnsw_ef_search = 40;
SELECT count(*) FILTER (WHERE n <> q.id) <= 12 AS few_rows_miss_themselves FROM hb q,
  LATERAL (SELECT id AS n FROM hb ORDER BY v <-> q.v LIMIT 1) s;
RESET omen.hnsw_ef_search;
RESET enable_seqscan;
DROP INDEX hb_ip, hb_cos, hb_l1;
-- every node above layer 0 is a pivot (up to 4,096; here with sketches,
-- 32 bits, one per dimension): the tops (level 2 and above) each head a
-- group of the level-1 nodes nearest them by projection.  A scan ranks
-- the tops, then the members of the 4 nearest groups, and starts on layer
-- 0 from the best 4 members or tops.  It still keeps to the right
-- cluster: 0 rows missed themselves here with L2 or cosine, and 199 of
-- 200 inner-product queries found their exact first row.
BEGIN;
CREATE TEMP TABLE hb_ip_exact AS
SELECT q.id, (SELECT id FROM hb ORDER BY v <#> q.v LIMIT 1) AS n
FROM hb q WHERE q.id BETWEEN 101 AND 300;
DROP INDEX hb_l2;
CREATE INDEX hb_sk ON hb USING omen_hnsw (v) WITH (sketch = on);
CREATE INDEX hb_skc ON hb USING omen_hnsw (v vector_cosine_ops) WITH (sketch = on);
CREATE INDEX hb_ski ON hb USING omen_hnsw (v vector_ip_ops) WITH (sketch = on);
SELECT pivot_level, pivots BETWEEN 500 AND 750 AS all_above_layer0,
       pivot_groups BETWEEN 10 AND 100 AS grouped
FROM omen_hnsw_info('hb_sk');
SET enable_seqscan = off;
SET omen.hnsw_ef_search = 40;
SELECT count(*) FILTER (WHERE n <> q.id) <= 12 AS pivots_few_miss_l2 FROM hb q,
  LATERAL (SELECT id AS n FROM hb ORDER BY v <-> q.v LIMIT 1) s;
SELECT count(*) FILTER (WHERE n <> q.id) <= 12 AS pivots_few_miss_cos FROM hb q,
  LATERAL (SELECT id AS n FROM hb ORDER BY v <=> q.v LIMIT 1) s;
SELECT count(*) FILTER (WHERE s.n = e.n) >= 190 AS pivots_ip_found
FROM hb_ip_exact e JOIN hb q USING (id),
  LATERAL (SELECT id AS n FROM hb ORDER BY v <#> q.v LIMIT 1) s;
ROLLBACK;
-- more than 4,096 nodes above layer 0 (m = 4: a quarter of 20,000 rows):
-- the pivots are the nodes of level 2 and up, the tops those of 3 and up,
-- and a scan walks layer 1 from the picks before layer 0
SELECT setseed(0.75);
CREATE TABLE hp (id int, v vector(4));
INSERT INTO hp SELECT i, ARRAY[random(), random(), random(), random()]::real[]::vector
FROM generate_series(1, 20000) i;
CREATE INDEX hp_idx ON hp USING omen_hnsw (v) WITH (m = 4);
SELECT pivot_level, pivots BETWEEN 1000 AND 1600 AS level2_pivots,
       pivot_groups BETWEEN 200 AND 450 AS level3_tops
FROM omen_hnsw_info('hp_idx');
SET enable_seqscan = off;
SET omen.hnsw_ef_search = 40;
SELECT count(*) FILTER (WHERE n = q.id) >= 195 AS level2_self_first FROM hp q,
  LATERAL (SELECT id AS n FROM hp ORDER BY v <-> q.v LIMIT 1) s WHERE q.id <= 200;
RESET omen.hnsw_ef_search;
RESET enable_seqscan;
-- a build that runs out of memory writes its graph so far and inserts the
-- rest into the pages: it writes no pivots (they would stand for the first
-- rows only; a full build has about 1,250 here), and scans still work
SET maintenance_work_mem = '1MB';
SET client_min_messages = warning;
CREATE INDEX hp_small ON hp USING omen_hnsw (v);
CREATE INDEX hp_small_sk ON hp USING omen_hnsw (v) WITH (sketch = on);
RESET client_min_messages;
RESET maintenance_work_mem;
SELECT i.relname, x.live_nodes, x.sketch_bits, x.pivots, x.pivot_level
FROM pg_class i, omen_hnsw_info(i.oid) x
WHERE i.relname IN ('hp_small', 'hp_small_sk') ORDER BY i.relname;
DROP INDEX hp_idx, hp_small_sk;
SET enable_seqscan = off;
SELECT count(*) FILTER (WHERE n = q.id) >= 195 AS partial_self_first FROM hp q,
  LATERAL (SELECT id AS n FROM hp ORDER BY v <-> q.v LIMIT 1) s WHERE q.id <= 200;
RESET enable_seqscan;
DROP TABLE hp;

-- a parallel build (workers started by omen itself) gives the same index
SET max_parallel_maintenance_workers = 2;
SET min_parallel_table_scan_size = 0;
SET client_min_messages = debug1;
CREATE INDEX hb_par ON hb USING omen_hnsw (v);
RESET client_min_messages;
RESET min_parallel_table_scan_size;
RESET max_parallel_maintenance_workers;
SELECT p.live_nodes = s.live_nodes AS same_nodes, p.heap_tids = s.heap_tids AS same_tids,
       p.entry_level = p.max_level AS entry_on_top
FROM omen_hnsw_info('hb_par') p, omen_hnsw_info('hb_l2') s;
SET enable_seqscan = off;
SET omen.hnsw_ef_search = 200;
SELECT count(*) FILTER (WHERE n = q.id) >= 18 AS self_first_parallel FROM hb q,
  LATERAL (SELECT id AS n FROM hb ORDER BY v <-> q.v LIMIT 1) s WHERE q.id BETWEEN 101 AND 120;
RESET omen.hnsw_ef_search;
RESET enable_seqscan;
DROP INDEX hb_par;

-- options and their limits
CREATE INDEX ON hb USING omen_hnsw (v) WITH (m = 1);
CREATE INDEX ON hb USING omen_hnsw (v) WITH (m = 101);
CREATE INDEX ON hb USING omen_hnsw (v) WITH (ef_construction = 3);
CREATE INDEX ON hb USING omen_hnsw (v) WITH (m = 40, ef_construction = 64);
CREATE INDEX ON hb USING omen_hnsw (v) WITH (storage = double);
CREATE INDEX ON hb USING omen_hnsw (v) WITH (alpha = 0.9);
CREATE INDEX ON hb USING omen_hnsw (v) WITH (alpha = 2.5);
CREATE INDEX ON hb USING omen_hnsw (v) WITH (lists = 4);
CREATE INDEX ON hb USING omen_hnsw (id);
CREATE INDEX ON hb USING omen_hnsw (v, v);
SET omen.hnsw_ef_search = 0;
SET omen.hnsw_ef_search = 1001;

-- alpha: 1.0 (the default) is HNSW's heuristic; 1.2 keeps longer edges
-- too, so layer 0 has more of them; a change (ALTER INDEX) applies to the
-- lists that later inserts and VACUUMs choose
CREATE INDEX hb_a12 ON hb USING omen_hnsw (v) WITH (alpha = 1.2);
SELECT a.avg_degree_layer0 > b.avg_degree_layer0 + 2 AS longer_edges_kept
FROM omen_hnsw_info('hb_a12') a, omen_hnsw_info('hb_l2') b;
ALTER INDEX hb_a12 SET (alpha = 1.5);
SELECT reloptions FROM pg_class WHERE relname = 'hb_a12';
DROP INDEX hb_a12;

-- NULLs are not indexed; zero vectors are not indexed under cosine, and
-- queries still return the indexed rows
CREATE TABLE hn (id int, v vector(2));
INSERT INTO hn VALUES (1, '[1,1]'), (2, NULL), (3, '[0,0]'), (4, '[2,1]'), (5, '[-1,3]');
CREATE INDEX hn_l2 ON hn USING omen_hnsw (v);
CREATE INDEX hn_cos ON hn USING omen_hnsw (v vector_cosine_ops);
SELECT heap_tids FROM omen_hnsw_info('hn_l2');
SELECT heap_tids FROM omen_hnsw_info('hn_cos');

-- storage = float unquoted: the grammar reads float as a type name and
-- passes "pg_catalog.float8", which means float too; what pg_dump writes
-- back (pg_get_indexdef) builds the same index
CREATE INDEX hn_float ON hn USING omen_hnsw (v) WITH (storage = float, m = 4);
CREATE INDEX hn_float2 ON hn USING omen_hnsw (v) WITH (storage = 'FLOAT');
DO $$ BEGIN EXECUTE replace(pg_get_indexdef('hn_float'::regclass), 'hn_float', 'hn_float3'); END $$;
SELECT c.relname, c.reloptions, x.storage, x.m
FROM pg_class c, omen_hnsw_info(c.oid::regclass) x
WHERE c.relname LIKE 'hn_float%' ORDER BY 1;
DROP INDEX hn_float, hn_float2, hn_float3;
SET enable_seqscan = off;
SELECT id FROM hn ORDER BY v <-> '[1,1]' LIMIT 10;
SELECT id FROM hn ORDER BY v <=> '[1,1]' LIMIT 10;
-- a NULL or zero query: rows in some order, none lost
SELECT count(*) FROM (SELECT id FROM hn ORDER BY v <-> NULL LIMIT 10) s;
SELECT count(*) FROM (SELECT id FROM hn ORDER BY v <=> '[0,0]' LIMIT 10) s;
RESET enable_seqscan;

-- a column without typmod: the first vector fixes the index's length
CREATE TABLE hu (id int, v vector);
CREATE INDEX hu_idx ON hu USING omen_hnsw (v);
INSERT INTO hu VALUES (1, '[1,2,3]');
INSERT INTO hu VALUES (2, '[1,2]');
INSERT INTO hu VALUES (3, '[4,5,6]');
SELECT dimensions, heap_tids FROM omen_hnsw_info('hu_idx');
SELECT * FROM hu ORDER BY id;
CREATE TABLE hu2 (id int, v vector);
INSERT INTO hu2 VALUES (1, '[1,2,3]'), (2, '[1,2]');
CREATE INDEX ON hu2 USING omen_hnsw (v);

-- vectors too long for a page with float storage fit with half
CREATE TABLE hl (v vector(3000));
INSERT INTO hl SELECT array_fill(i, ARRAY[3000])::vector FROM generate_series(1, 3) i;
CREATE INDEX ON hl USING omen_hnsw (v);
CREATE INDEX hl_half ON hl USING omen_hnsw (v) WITH (storage = half);
SELECT heap_tids, storage FROM omen_hnsw_info('hl_half');

-- an empty table, an unlogged table
CREATE TABLE he (v vector(2));
CREATE INDEX he_idx ON he USING omen_hnsw (v);
SET enable_seqscan = off;
SELECT * FROM he ORDER BY v <-> '[1,1]' LIMIT 1;
INSERT INTO he VALUES ('[1,1]'), ('[2,2]');
SELECT * FROM he ORDER BY v <-> '[2,1.9]' LIMIT 1;
CREATE UNLOGGED TABLE hul (v vector(2));
INSERT INTO hul VALUES ('[1,1]'), ('[5,5]');
CREATE INDEX hul_idx ON hul USING omen_hnsw (v);
INSERT INTO hul VALUES ('[3,3]');
SELECT * FROM hul ORDER BY v <-> '[3.1,3]' LIMIT 2;
RESET enable_seqscan;

-- codes = sq8: the walk reads an 8-bit code per dimension, the rows still
-- come in exact distance order (re-scored with the stored vectors), and
-- identical vectors still share one element
CREATE INDEX ON hb USING omen_hnsw (v) WITH (codes = sq4);
CREATE INDEX hb_sq8 ON hb USING omen_hnsw (v) WITH (codes = sq8);
SELECT live_nodes, heap_tids, storage, codes FROM omen_hnsw_info('hb_sq8');
-- 32 bytes of code and 12 of its head per element: 1.0-1.4 times the size
SELECT (SELECT size_bytes FROM omen_hnsw_info('hb_sq8'))::float /
       (SELECT size_bytes FROM omen_hnsw_info('hb_l2')) BETWEEN 1.0 AND 1.4 AS codes_cost_a_little;
DROP INDEX hb_sq8;
CREATE TABLE hq (id int, v vector(3));
INSERT INTO hq VALUES (1, '[0,0,0]'), (2, '[1,0,0]'), (3, '[0,2,0]'), (4, '[1,1,1]'),
	(5, '[1,1,1]'), (6, '[-3,0.5,2]'), (7, '[0.001,0,0]');
CREATE INDEX hq_l2 ON hq USING omen_hnsw (v) WITH (codes = sq8, storage = half);
INSERT INTO hq VALUES (8, '[1,1,1]'), (9, '[0.5,0.5,0.5]'), (10, '[2,2,2]');
CREATE INDEX hq_l1 ON hq USING omen_hnsw (v vector_l1_ops) WITH (codes = sq8);
SELECT live_nodes, heap_tids, storage, codes FROM omen_hnsw_info('hq_l2');
-- the options are read when the index is built: a change takes effect at
-- REINDEX
ALTER INDEX hq_l1 SET (codes = none);
SELECT codes FROM omen_hnsw_info('hq_l1');
REINDEX INDEX hq_l1;
SELECT codes FROM omen_hnsw_info('hq_l1');
ALTER INDEX hq_l1 SET (codes = sq8);
REINDEX INDEX hq_l1;
SELECT codes FROM omen_hnsw_info('hq_l1');
SET enable_seqscan = off;
SELECT id, round((v <-> '[0.9,1,1.2]')::numeric, 4) AS d FROM hq ORDER BY v <-> '[0.9,1,1.2]', id LIMIT 10;
SELECT id, round((v <+> '[0.9,1,1.2]')::numeric, 4) AS d FROM hq ORDER BY v <+> '[0.9,1,1.2]' LIMIT 3;
RESET enable_seqscan;
-- sketch = on: every layer-0 edge carries a sketch (3 sign bits here, one
-- per dimension), an insert sketches the edges it adds, and a scan still
-- returns the nearest rows in exact order; sketch takes auto (the
-- default) or a boolean
CREATE INDEX ON hq USING omen_hnsw (v) WITH (sketch = maybe);
SELECT sketch_bits, unsketched_edges FROM omen_hnsw_info('hq_l2');
ALTER INDEX hq_l2 SET (sketch = on);
REINDEX INDEX hq_l2;
INSERT INTO hq VALUES (11, '[1,2,1]'), (12, '[0.8,1.1,1.1]');
SELECT live_nodes, heap_tids, sketch_bits, unsketched_edges FROM omen_hnsw_info('hq_l2');
SET enable_seqscan = off;
SELECT round((v <-> '[0.9,1,1.2]')::numeric, 4) AS d FROM hq ORDER BY v <-> '[0.9,1,1.2]' LIMIT 6;
RESET enable_seqscan;
-- sketch = auto keeps sketches where they take no room: 768 float
-- dimensions (two elements a page either way, 3,320 or 3,832 bytes with
-- their lists and line pointers, leaving room for nodes of higher levels),
-- not half vectors (four a page, three with sketches), nor 32 dimensions
-- (hb_l2: 21 a page, 9 with sketches); on and off choose; L1 has none.
-- Every index but L1's has the basis pages besides (64 x 768 floats: 25
-- pages) and a page of pivots: with sketches or without (hw_auto, hw_off)
-- the same pages, and L1's 26 fewer.
SELECT setseed(0.25);
CREATE TABLE hw (id int, v vector(768));
INSERT INTO hw SELECT i, (SELECT array_agg(random()::real) FROM generate_series(1, 768) d WHERE i > 0)::vector
FROM generate_series(1, 300) i;
CREATE INDEX hw_auto ON hw USING omen_hnsw (v);
CREATE INDEX hw_half ON hw USING omen_hnsw (v) WITH (storage = half);
CREATE INDEX hw_half_on ON hw USING omen_hnsw (v) WITH (storage = half, sketch);
CREATE INDEX hw_off ON hw USING omen_hnsw (v) WITH (sketch = false);
CREATE INDEX hw_l1 ON hw USING omen_hnsw (v vector_l1_ops);
SELECT i.relname, x.storage, x.sketch_bits, x.unsketched_edges, x.pages
FROM pg_class i, omen_hnsw_info(i.oid) x
WHERE i.relname LIKE 'hw\_%' ORDER BY i.relname;
SELECT sketch_bits FROM omen_hnsw_info('hb_l2');
-- the build's nodes above layer 0 are pivots (at most 4,096; 17 here,
-- one top heading a group of the other 16) that scans start from, with
-- sketches or without; L1 has none
SELECT pivots, pivot_groups, pivot_level
FROM omen_hnsw_info('hw_auto');
SELECT i.relname, x.pivots, x.pivot_level FROM pg_class i, omen_hnsw_info(i.oid) x
WHERE i.relname IN ('hw_off', 'hw_l1') ORDER BY i.relname;
-- a scan with auto's sketches finds each row as its own nearest
DROP INDEX hw_half, hw_half_on, hw_off, hw_l1;
SET enable_seqscan = off;
SET omen.hnsw_ef_search = 20;
SELECT count(*) FILTER (WHERE n = q.id) AS self_first_auto FROM hw q,
  LATERAL (SELECT id AS n FROM hw ORDER BY v <-> q.v LIMIT 1) s;
-- with m = 32 no node is above level 1 here: no tops, and a scan ranks
-- the pivots all together
DROP INDEX hw_auto;
CREATE INDEX hw_m32 ON hw USING omen_hnsw (v) WITH (m = 32, sketch = on);
SELECT pivots, pivot_groups, pivot_level FROM omen_hnsw_info('hw_m32');
SELECT count(*) FILTER (WHERE n = q.id) AS self_first_m32 FROM hw q,
  LATERAL (SELECT id AS n FROM hw ORDER BY v <-> q.v LIMIT 1) s;
RESET omen.hnsw_ef_search;
RESET enable_seqscan;
DROP TABLE hw;
-- a node keeps its projection as 16-bit floats: beyond their range (a
-- vector longer than 65,504) its edges get no sketches, and scans still
-- find the nearest rows in order
CREATE TABLE hbig (id int, v vector(3));
INSERT INTO hbig SELECT i, ARRAY[100000 + i, 200000 - i, (i % 7) * 1000]::real[]::vector
FROM generate_series(1, 50) i;
CREATE INDEX hbig_idx ON hbig USING omen_hnsw (v) WITH (sketch = on);
SELECT sketch_bits, unsketched_edges > 0 AS some_unsketched,
       unsketched_edges = (SELECT round(avg_degree_layer0 * live_nodes) FROM omen_hnsw_info('hbig_idx')) AS all_unsketched
FROM omen_hnsw_info('hbig_idx');
SET enable_seqscan = off;
SELECT id FROM hbig ORDER BY v <-> '[100011, 199990, 3000]' LIMIT 3;
RESET enable_seqscan;
DROP TABLE hbig;
-- a code costs a byte a dimension: 2,000 dimensions fit as float without
-- codes, not with them; half with codes holds them
CREATE TABLE hl8 (v vector(2000));
INSERT INTO hl8 SELECT array_fill(i, ARRAY[2000])::vector FROM generate_series(1, 2) i;
CREATE INDEX ON hl8 USING omen_hnsw (v) WITH (codes = sq8);
CREATE INDEX hl8_half ON hl8 USING omen_hnsw (v) WITH (codes = sq8, storage = half);
SELECT heap_tids, storage, codes FROM omen_hnsw_info('hl8_half');

-- codes = sq8 re-scores lazily, in the order of a lower bound of the exact
-- distance: a scan through every row (many batches of 8) returns each row
-- once, and the 40 rows of one batch come in ascending exact distance for
-- five queries under each metric with a bound (float storage, so the SQL
-- operator computes the distance the index ranks by)
CREATE TABLE hz (id int, v vector(16));
INSERT INTO hz SELECT i, (SELECT array_agg(round((sin(i * 0.37 + j * j * 0.11) * 10 + cos(i * 1.7 + j) * 5)::numeric, 2))::real[]::vector FROM generate_series(1, 16) j) FROM generate_series(1, 2000) i;
CREATE INDEX hz_l2 ON hz USING omen_hnsw (v) WITH (codes = sq8);
CREATE INDEX hz_ip ON hz USING omen_hnsw (v vector_ip_ops) WITH (codes = sq8);
CREATE INDEX hz_cos ON hz USING omen_hnsw (v vector_cosine_ops) WITH (codes = sq8);
SET enable_seqscan = off;
SET omen.hnsw_ef_search = 8;
SELECT count(*) AS n, count(DISTINCT id) AS ids FROM (SELECT id FROM hz ORDER BY v <-> (SELECT v FROM hz WHERE id = 17) LIMIT 3000) s;
SELECT count(*) AS n, count(DISTINCT id) AS ids FROM (SELECT id FROM hz ORDER BY v <#> (SELECT v FROM hz WHERE id = 17) LIMIT 3000) s;
SELECT count(*) AS n, count(DISTINCT id) AS ids FROM (SELECT id FROM hz ORDER BY v <=> (SELECT v FROM hz WHERE id = 17) LIMIT 3000) s;
SET omen.hnsw_ef_search = 40;
SELECT op, count(*) AS queries, bool_and(ds[2] <> ds[1]) AS distinct_distances,
       bool_and((SELECT bool_and(ds[i] >= ds[i - 1] - 1e-6 * (1 + abs(ds[i - 1])))
                 FROM generate_series(2, cardinality(ds)) i)) AS ascending
FROM unnest(ARRAY[17, 101, 555, 1234, 1999]) qid,
     LATERAL (SELECT v AS qv FROM hz WHERE id = qid) q,
     LATERAL (
  SELECT 'l2' AS op, (SELECT array_agg(d ORDER BY rn) FROM (SELECT s.v <-> q.qv AS d, row_number() OVER () AS rn FROM (SELECT v FROM hz ORDER BY v <-> q.qv LIMIT 40) s) a) AS ds
  UNION ALL
  SELECT 'ip', (SELECT array_agg(d ORDER BY rn) FROM (SELECT s.v <#> q.qv AS d, row_number() OVER () AS rn FROM (SELECT v FROM hz ORDER BY v <#> q.qv LIMIT 40) s) a)
  UNION ALL
  SELECT 'cosine', (SELECT array_agg(d ORDER BY rn) FROM (SELECT s.v <=> q.qv AS d, row_number() OVER () AS rn FROM (SELECT v FROM hz ORDER BY v <=> q.qv LIMIT 40) s) a)) r
GROUP BY op ORDER BY op;
RESET omen.hnsw_ef_search;
RESET enable_seqscan;

-- omen_hnsw_info on something else
SELECT * FROM omen_hnsw_info('hb_pkey');

DROP TABLE hb, hb_centres, hn, hu, hu2, hl, he, hul, hq, hl8, hz;
