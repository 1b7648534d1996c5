-- omen_hnsw recall@10 on clustered data with codes = sq8: the walk reads
-- 8-bit codes and each batch is re-scored with the stored vectors.  The
-- body is hnsw_recall.psql.
\set codes sq8
\set sketch off
\ir hnsw_recall.psql
