-- Text and binary forms of vector round-trip exactly.
--
-- Catches: output that loses float4 precision or input that rounds
-- differently (a vector that changes when dumped and restored), text that
-- differs from PostgreSQL's own float4 output, and send/recv that do not
-- match the documented wire layout (int16 dim, int16 0, big-endian float4s)
-- or do not read back what they wrote.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS omen;
SELECT setseed(0.2024);
SELECT plan(10);

-- 600 random vectors of 1..300 dimensions: half in [-100, 100], half with
-- magnitudes from 1e-35 to 1e35, plus the edge values of float4
CREATE TEMP TABLE vecs (id serial, a real[], v vector);
INSERT INTO vecs (a)
SELECT (SELECT array_agg(x ORDER BY i)
        FROM (SELECT i, CASE WHEN n % 2 = 0
                             THEN ((random() * 2 - 1) * 100)::real
                             ELSE ((random() * 2 - 1) * 10 ^ (random() * 70 - 35))::real
                        END AS x
              FROM generate_series(1, 1 + (n * 37) % 300) i) s)
FROM generate_series(1, 600) n;
INSERT INTO vecs (a) VALUES
  ('{3.4028235e+38,-3.4028235e+38,1.1754944e-38,1e-45,-1e-45,0,-0,1,0.1,0.3333333}'),
  ('{1.2345679,123456.79,7e-10,16777217,0.099999994}');
UPDATE vecs SET v = a::vector;

SELECT is((SELECT count(*) FROM vecs WHERE vector_dims(v) = cardinality(a)), 602::bigint,
          'every vector has as many dimensions as its array');

SELECT is((SELECT count(*) FROM vecs WHERE v::real[] IS DISTINCT FROM a), 0::bigint,
          'real[] -> vector -> real[] gives the same floats');

SELECT is((SELECT count(*) FROM vecs WHERE (v::text)::vector::real[] IS DISTINCT FROM a), 0::bigint,
          'vector -> text -> vector gives the same floats (exact text round trip)');

SELECT is((SELECT count(*) FROM vecs WHERE (v::text)::vector::text <> v::text), 0::bigint,
          'text -> vector -> text is stable');

SELECT is((SELECT count(*) FROM vecs
           WHERE v::text <> translate(a::text, '{}', '[]')), 0::bigint,
          'vector text is the float4 output of each element, in brackets');

SELECT is((SELECT count(*) FROM vecs WHERE (v::text)::vector <> v), 0::bigint,
          'the = operator agrees that text round trips are equal');

-- the wire format: int16 dimensions, int16 0, then each element as float4send
SELECT is((SELECT count(*) FROM vecs
           WHERE vector_send(v) <> int2send(cardinality(a)::int2) || int2send(0::int2) ||
                 (SELECT string_agg(float4send(x), ''::bytea ORDER BY o)
                  FROM unnest(a) WITH ORDINALITY AS u(x, o))), 0::bigint,
          'vector_send writes int16 dim, int16 0, big-endian float4s');

-- vector_recv through a real binary COPY (server-side file, removed on read)
CREATE TEMP TABLE bin_in (id int, v vector);
CREATE TEMP TABLE bin_fixed (id int, v vector(10));
DO $$
DECLARE
	f text := current_setting('data_directory') || '/omen_pgtap_' || pg_backend_pid() || '.copy';
BEGIN
	EXECUTE format('COPY (SELECT id, v FROM vecs) TO %L (FORMAT binary)', f);
	EXECUTE format('COPY bin_in FROM PROGRAM %L (FORMAT binary)', 'cat ' || f);
	EXECUTE format('COPY (SELECT id, v FROM vecs WHERE vector_dims(v) = 10) TO %L (FORMAT binary)', f);
	EXECUTE format('COPY bin_fixed FROM PROGRAM %L (FORMAT binary)', 'cat ' || f || ' && rm -f ' || f);
END
$$;

SELECT is((SELECT count(*) FROM vecs JOIN bin_in USING (id)
           WHERE bin_in.v::real[] IS NOT DISTINCT FROM vecs.a), 602::bigint,
          'COPY BINARY out and in (send/recv) gives every vector back unchanged');

SELECT is((SELECT count(*) FROM bin_fixed JOIN vecs USING (id)
           WHERE bin_fixed.v::real[] IS NOT DISTINCT FROM vecs.a),
          (SELECT count(*) FROM vecs WHERE vector_dims(v) = 10),
          'COPY BINARY into a vector(10) column accepts 10-dimensional vectors');

-- a 2-dimensional vector written by send, read by recv into vector(10)
CREATE FUNCTION pg_temp.copy_wrong_dims() RETURNS void AS $$
DECLARE
	f text := current_setting('data_directory') || '/omen_pgtap_' || pg_backend_pid() || '.copy';
BEGIN
	EXECUTE format('COPY (SELECT 1, ''[1,2]''::vector) TO %L (FORMAT binary)', f);
	EXECUTE format('COPY bin_fixed FROM PROGRAM %L (FORMAT binary)', 'cat ' || f || ' && rm -f ' || f);
END
$$ LANGUAGE plpgsql;

SELECT throws_ok('SELECT pg_temp.copy_wrong_dims()', '22000', NULL,
                 'COPY BINARY of a 2-dimensional vector into vector(10) is refused');

SELECT * FROM finish();
ROLLBACK;
