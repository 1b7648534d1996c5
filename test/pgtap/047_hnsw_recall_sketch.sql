-- omen_hnsw recall@10 on clustered data with codes = sq8 and edge
-- sketches (sketch = on): scans pass over neighbours their sketches place
-- too far to matter, at the default omen.hnsw_sketch_margin.  Inserts and
-- VACUUM's repairs write the sketches of the edges they add.  The body is
-- hnsw_recall.psql.
\set codes sq8
\set sketch on
\ir hnsw_recall.psql
