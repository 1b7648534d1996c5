-- omen_diskann: creating indexes, options and their limits, the quantiser,
-- what is indexed, and which queries the planner sends to the index.

-- 10,000 vectors of 32 dimensions around 20 centres (deterministic)
SELECT setseed(0.5);
CREATE TABLE db_centres AS
SELECT g, array_agg((random() * 10)::real ORDER BY d) AS c
FROM generate_series(1, 20) g, generate_series(1, 32) d GROUP BY g;
CREATE TABLE db (id int PRIMARY KEY, cat int, v vector(32));
INSERT INTO db
SELECT i, i % 100,
       (SELECT array_agg(c[d] + (random() - 0.5)::real * 2 ORDER BY d)
        FROM db_centres, generate_series(1, 32) d WHERE g = 1 + i % 20)::vector
FROM generate_series(1, 10000) i;
ANALYZE db;

CREATE INDEX db_l2 ON db USING omen_diskann (v);
-- 2-bit codes: 32 dimensions in 8 bytes; 42 neighbour slots for R = 32;
-- the quantiser is trained (its relative squared error is far below 1)
SELECT live_nodes, deleted_nodes, free_slots, dimensions, max_neighbors,
       build_list_size, alpha, quantization_bits, code_bytes,
       trained, uncoded_nodes, quantizer_error < 0.2 AS codes_fit,
       entry_live, metric,
       pages - node_pages - vector_pages - 1 BETWEEN 1 AND 5 AS page_kinds,
       avg_degree BETWEEN 8 AND 42 AS degree_ok, coarse_centres
FROM omen_diskann_info('db_l2');

-- the planner uses it for ORDER BY <-> LIMIT, and for nothing else
EXPLAIN (COSTS OFF) SELECT id FROM db ORDER BY v <-> '[1,2,3,4,5,6,7,8,9,10,1,2,3,4,5,6,7,8,9,10,1,2,3,4,5,6,7,8,9,10,1,2]' LIMIT 10;
EXPLAIN (COSTS OFF) SELECT id FROM db ORDER BY v <+> '[1,2,3,4,5,6,7,8,9,10,1,2,3,4,5,6,7,8,9,10,1,2,3,4,5,6,7,8,9,10,1,2]' LIMIT 10;
EXPLAIN (COSTS OFF) SELECT id FROM db ORDER BY v <-> '[1,2,3,4,5,6,7,8,9,10,1,2,3,4,5,6,7,8,9,10,1,2,3,4,5,6,7,8,9,10,1,2]' DESC LIMIT 10;
EXPLAIN (COSTS OFF) SELECT count(*) FROM db WHERE v IS NOT NULL;

-- each operator class serves its own operator; each bit width builds
CREATE INDEX db_ip ON db USING omen_diskann (v vector_ip_ops) WITH (quantization_bits = 4);
CREATE INDEX db_cos ON db USING omen_diskann (v vector_cosine_ops) WITH (max_neighbors = 16, build_list_size = 40, alpha = 1.0);
CREATE INDEX db_l1 ON db USING omen_diskann (v vector_l1_ops) WITH (quantization_bits = 1);
CREATE INDEX db_full ON db USING omen_diskann (v) WITH (quantization_bits = 0);
SELECT i.relname, x.metric, x.max_neighbors, x.build_list_size, x.alpha::numeric(3,2),
       x.quantization_bits, x.code_bytes, x.trained, x.live_nodes, x.vector_pages > 0 AS has_vector_pages
FROM pg_class i, omen_diskann_info(i.oid) x
WHERE i.relname IN ('db_l2', 'db_ip', 'db_cos', 'db_l1', 'db_full') ORDER BY i.relname;
-- more bits, smaller error
SELECT (SELECT quantizer_error FROM omen_diskann_info('db_ip')) <
       (SELECT quantizer_error FROM omen_diskann_info('db_l2')) AND
       (SELECT quantizer_error FROM omen_diskann_info('db_l2')) <
       (SELECT quantizer_error FROM omen_diskann_info('db_l1')) AS error_falls_with_bits;
-- coarse centres: with 20 clusters, codes of each vector's offset from its
-- nearest learned centre err far less than bands learned over all clusters
-- (0.061 for db_l2 before there were centres; 0.015 with them)
SELECT quantizer_error < 0.03 AS centred_codes_fit FROM omen_diskann_info('db_l2');
EXPLAIN (COSTS OFF) SELECT id FROM db ORDER BY v <#> (SELECT v FROM db WHERE id = 1) LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM db ORDER BY v <=> (SELECT v FROM db WHERE id = 1) LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM db ORDER BY v <+> (SELECT v FROM db WHERE id = 1) LIMIT 5;

-- every operator finds a vector as its own nearest neighbour
SET enable_seqscan = off;
SELECT bool_and(n = q.id) AS self_first_l2 FROM db q,
  LATERAL (SELECT id AS n FROM db ORDER BY v <-> q.v LIMIT 1) s WHERE q.id % 500 = 3;
SELECT bool_and(n = q.id) AS self_first_cos FROM db q,
  LATERAL (SELECT id AS n FROM db ORDER BY v <=> q.v LIMIT 1) s WHERE q.id % 500 = 3;
-- 1-bit codes (4 bytes for 32 dimensions) are coarse: they need a longer
-- list re-scored to find the nearest
SET omen.diskann_search_list_size = 400;
SET omen.diskann_rerank = 400;
SELECT bool_and(n = q.id) AS self_first_l1 FROM db q,
  LATERAL (SELECT id AS n FROM db ORDER BY v <+> q.v LIMIT 1) s WHERE q.id % 500 = 3;
RESET omen.diskann_search_list_size;
RESET omen.diskann_rerank;
DROP INDEX db_l2, db_cos, db_l1;
SELECT bool_and(n = q.id) AS self_first_full FROM db q,
  LATERAL (SELECT id AS n FROM db ORDER BY v <-> q.v LIMIT 1) s WHERE q.id % 500 = 3;
-- inner product: the row with the largest inner product comes first
SELECT bool_and(n = e) AS ip_first FROM db q,
  LATERAL (SELECT id AS n FROM db ORDER BY v <#> q.v LIMIT 1) s,
  LATERAL (SELECT id AS e FROM db ORDER BY (v <#> q.v) + 0 LIMIT 1) x WHERE q.id % 1000 = 3;
RESET enable_seqscan;
DROP INDEX db_ip, db_full;

-- a parallel build (workers started by omen itself) gives an index of the
-- same shape and quality
SET max_parallel_maintenance_workers = 2;
SET min_parallel_table_scan_size = 0;
SET client_min_messages = debug1;
CREATE INDEX db_par ON db USING omen_diskann (v);
RESET client_min_messages;
RESET min_parallel_table_scan_size;
RESET max_parallel_maintenance_workers;
SELECT live_nodes, trained, entry_live, avg_degree BETWEEN 8 AND 42 AS degree_ok
FROM omen_diskann_info('db_par');
SET enable_seqscan = off;
SELECT bool_and(n = q.id) AS self_first_parallel FROM db q,
  LATERAL (SELECT id AS n FROM db ORDER BY v <-> q.v LIMIT 1) s WHERE q.id % 500 = 3;
RESET enable_seqscan;
DROP INDEX db_par;

-- options and their limits
CREATE INDEX ON db USING omen_diskann (v) WITH (max_neighbors = 3);
CREATE INDEX ON db USING omen_diskann (v) WITH (max_neighbors = 129);
CREATE INDEX ON db USING omen_diskann (v) WITH (build_list_size = 9);
CREATE INDEX ON db USING omen_diskann (v) WITH (build_list_size = 1001);
CREATE INDEX ON db USING omen_diskann (v) WITH (max_neighbors = 64, build_list_size = 50);
CREATE INDEX ON db USING omen_diskann (v) WITH (alpha = 0.9);
CREATE INDEX ON db USING omen_diskann (v) WITH (alpha = 2.5);
CREATE INDEX ON db USING omen_diskann (v) WITH (quantization_bits = 3);
CREATE INDEX ON db USING omen_diskann (v) WITH (quantization_bits = 8);
CREATE INDEX ON db USING omen_diskann (v) WITH (m = 16);
CREATE INDEX ON db USING omen_diskann (id);
CREATE INDEX ON db USING omen_diskann (v, v);
SET omen.diskann_search_list_size = 0;
SET omen.diskann_search_list_size = 1001;
SET omen.diskann_rerank = -1;

-- NULLs are not indexed; zero vectors are not indexed under cosine, and
-- queries still return the indexed rows
CREATE TABLE dn (id int, v vector(2));
INSERT INTO dn VALUES (1, '[1,1]'), (2, NULL), (3, '[0,0]'), (4, '[2,1]'), (5, '[-1,3]');
CREATE INDEX dn_l2 ON dn USING omen_diskann (v);
CREATE INDEX dn_cos ON dn USING omen_diskann (v vector_cosine_ops);
-- too few rows to train a quantiser: nodes are scored with full vectors
SELECT live_nodes, trained, uncoded_nodes FROM omen_diskann_info('dn_l2');
SELECT live_nodes, trained FROM omen_diskann_info('dn_cos');
SET enable_seqscan = off;
SELECT id FROM dn ORDER BY v <-> '[1,1]' LIMIT 10;
SELECT id FROM dn ORDER BY v <=> '[1,1]' LIMIT 10;
-- a NULL or zero query: rows in some order, none lost
SELECT count(*) FROM (SELECT id FROM dn ORDER BY v <-> NULL LIMIT 10) s;
SELECT count(*) FROM (SELECT id FROM dn ORDER BY v <=> '[0,0]' LIMIT 10) s;
RESET enable_seqscan;

-- a column without typmod: the first vector fixes the index's length
CREATE TABLE du (id int, v vector);
CREATE INDEX du_idx ON du USING omen_diskann (v);
INSERT INTO du VALUES (1, '[1,2,3]');
INSERT INTO du VALUES (2, '[1,2]');
INSERT INTO du VALUES (3, '[4,5,6]');
SELECT dimensions, live_nodes FROM omen_diskann_info('du_idx');
SELECT * FROM du ORDER BY id;
CREATE TABLE du2 (id int, v vector);
INSERT INTO du2 VALUES (1, '[1,2,3]'), (2, '[1,2]');
CREATE INDEX ON du2 USING omen_diskann (v);

-- a full vector must fit on a page
CREATE TABLE dl (v vector(3000));
INSERT INTO dl SELECT array_fill(i, ARRAY[3000])::vector FROM generate_series(1, 3) i;
CREATE INDEX ON dl USING omen_diskann (v);

-- an empty table fills up past the training threshold: the quantiser is
-- trained from the first 1,000 rows and every node gets its code
CREATE TABLE de (id int, v vector(8));
CREATE INDEX de_idx ON de USING omen_diskann (v);
SET enable_seqscan = off;
SELECT * FROM de ORDER BY v <-> '[1,1,1,1,1,1,1,1]' LIMIT 1;
INSERT INTO de SELECT i, (SELECT array_agg((random() * 10)::real) FROM generate_series(1, 8) WHERE i > 0)::vector
FROM generate_series(1, 999) i;
SELECT live_nodes, trained, uncoded_nodes FROM omen_diskann_info('de_idx');
INSERT INTO de SELECT i, (SELECT array_agg((random() * 10)::real) FROM generate_series(1, 8) WHERE i > 0)::vector
FROM generate_series(1000, 1500) i;
SELECT live_nodes, trained, uncoded_nodes, quantizer_error < 0.2 AS codes_fit FROM omen_diskann_info('de_idx');
SELECT bool_and(n = q.id) AS self_first_trained FROM de q,
  LATERAL (SELECT id AS n FROM de ORDER BY v <-> q.v LIMIT 1) s WHERE q.id % 50 = 7;
RESET enable_seqscan;

-- an unlogged table
CREATE UNLOGGED TABLE dul (v vector(2));
INSERT INTO dul VALUES ('[1,1]'), ('[5,5]');
CREATE INDEX dul_idx ON dul USING omen_diskann (v);
INSERT INTO dul VALUES ('[3,3]');
SET enable_seqscan = off;
SELECT * FROM dul ORDER BY v <-> '[3.1,3]' LIMIT 2;
RESET enable_seqscan;

-- omen_diskann_info on something else
SELECT * FROM omen_diskann_info('db_pkey');

DROP TABLE db, db_centres, dn, du, du2, dl, de, dul;
