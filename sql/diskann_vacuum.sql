-- omen_diskann and VACUUM: dead rows leave the index (IP-DiskANN in-place
-- delete), the graph is repaired around them (queries still find every live row), the entry point stays
-- live, and freed slots are reused so the index does not grow under churn.

SELECT setseed(0.75);
CREATE TABLE dv (id int PRIMARY KEY, v vector(8));
INSERT INTO dv
SELECT i, (SELECT array_agg((random() * 10)::real) FROM generate_series(1, 8) WHERE i > 0)::vector
FROM generate_series(1, 3000) i;
CREATE INDEX dv_idx ON dv USING omen_diskann (v) WITH (max_neighbors = 16, build_list_size = 40);
SELECT live_nodes, deleted_nodes, free_slots FROM omen_diskann_info('dv_idx');

-- delete two thirds; VACUUM removes them from the index
DELETE FROM dv WHERE id % 3 <> 0;
VACUUM dv;
SELECT live_nodes, deleted_nodes, free_slots FROM omen_diskann_info('dv_idx');
-- two thirds deleted is past the 20% sweep threshold: the slots are free
SELECT entry_live, avg_degree > 4 AS still_connected FROM omen_diskann_info('dv_idx');

-- every live row is still reachable, and each finds itself first
SET enable_seqscan = off;
SET omen.diskann_search_list_size = 100;
SELECT count(*) FROM (SELECT id FROM dv ORDER BY v <-> '[5,5,5,5,5,5,5,5]') s;
SELECT bool_and(n = q.id) AS self_first FROM dv q,
  LATERAL (SELECT id AS n FROM dv ORDER BY v <-> q.v LIMIT 1) s;
RESET omen.diskann_search_list_size;
RESET enable_seqscan;

-- churn: rounds of deleting 300 rows, VACUUM, inserting 300 new ones; the
-- index reuses the freed slots instead of growing (deleted nodes are swept
-- into free slots once they pass 20% of the nodes)
CREATE FUNCTION dv_churn(r int) RETURNS void LANGUAGE sql AS $$
	INSERT INTO dv
	SELECT 100000 * r + i,
		   (SELECT array_agg((random() * 10)::real) FROM generate_series(1, 8) WHERE i > 0)::vector
	FROM generate_series(1, 300) i;
$$;
DELETE FROM dv WHERE id IN (SELECT id FROM dv ORDER BY id LIMIT 300);
VACUUM dv;
SELECT dv_churn(1);
SELECT pg_relation_size('dv_idx') AS size_round1 \gset
DELETE FROM dv WHERE id IN (SELECT id FROM dv ORDER BY id LIMIT 300);
VACUUM dv;
SELECT dv_churn(2);
DELETE FROM dv WHERE id IN (SELECT id FROM dv ORDER BY id LIMIT 300);
VACUUM dv;
SELECT dv_churn(3);
DELETE FROM dv WHERE id IN (SELECT id FROM dv ORDER BY id LIMIT 300);
VACUUM dv;
SELECT dv_churn(4);
DELETE FROM dv WHERE id IN (SELECT id FROM dv ORDER BY id LIMIT 300);
VACUUM dv;
SELECT dv_churn(5);
SELECT count(*) FROM dv;
SELECT live_nodes, deleted_nodes, free_slots FROM omen_diskann_info('dv_idx');
SELECT pg_relation_size('dv_idx') <= :size_round1 * 1.1 AS size_bounded;
SET enable_seqscan = off;
SET omen.diskann_search_list_size = 100;
SELECT bool_and(n = q.id) AS self_first FROM dv q,
  LATERAL (SELECT id AS n FROM dv ORDER BY v <-> q.v LIMIT 1) s;
RESET omen.diskann_search_list_size;
RESET enable_seqscan;

-- everything deleted: the index is empty but usable
DELETE FROM dv;
VACUUM dv;
SELECT live_nodes, deleted_nodes, free_slots, entry_live FROM omen_diskann_info('dv_idx');
INSERT INTO dv VALUES (1, '[1,1,1,1,1,1,1,1]'), (2, '[2,2,2,2,2,2,2,2]');
SET enable_seqscan = off;
SELECT id FROM dv ORDER BY v <-> '[2,2,2,2,2,2,2,1]' LIMIT 5;
RESET enable_seqscan;
DROP TABLE dv;
DROP FUNCTION dv_churn(int);
