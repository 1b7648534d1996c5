-- omen_hnsw recall@10 on clustered data, with the walk on the stored
-- vectors (codes = none, the default).  The body is hnsw_recall.psql.
\set codes none
\set sketch off
\ir hnsw_recall.psql
