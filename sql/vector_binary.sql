-- Binary send/recv: COPY ... (FORMAT binary) round-trips exactly, and bad
-- binary values are rejected with nothing stored.

-- the wire layout: int16 dim, int16 reserved, float4 elements, big-endian
SELECT vector_send('[1,2,3]');

CREATE TABLE vb (id int, v vector);
INSERT INTO vb VALUES (1, '[1,2,3]'), (2, '[0.1,-0,3.4028235e+38,1e-45]'), (3, NULL);
CREATE TABLE vb2 (LIKE vb);
DO $$
DECLARE
	f text := '/tmp/omen_regress_' || pg_backend_pid() || '.bin';
BEGIN
	EXECUTE format('COPY vb TO %L (FORMAT binary)', f);
	EXECUTE format('COPY vb2 FROM %L (FORMAT binary)', f);
	EXECUTE format('COPY (SELECT) TO PROGRAM %L', 'rm -f ' || f);
END $$;
SELECT a.id, a.v::text IS NOT DISTINCT FROM b.v::text AS same, b.v
FROM vb a JOIN vb2 b USING (id) ORDER BY id;

-- load one binary COPY row whose single field has the given bytes
CREATE FUNCTION load_binary(payload bytea, target regclass) RETURNS void AS $$
DECLARE
	f text := '/tmp/omen_regress_' || pg_backend_pid() || '.bin';
	lo oid;
BEGIN
	lo := lo_from_bytea(0, '\x5047434f50590aff0d0a00'::bytea	-- signature
			|| '\x0000000000000000'::bytea	-- flags, header extension
			|| '\x0001'::bytea || int4send(length(payload)) || payload
			|| '\xffff'::bytea);	-- trailer
	PERFORM lo_export(lo, f);
	PERFORM lo_unlink(lo);
	BEGIN
		EXECUTE format('COPY %s FROM %L (FORMAT binary)', target, f);
	EXCEPTION WHEN others THEN
		EXECUTE format('COPY (SELECT) TO PROGRAM %L', 'rm -f ' || f);
		RAISE;
	END;
	EXECUTE format('COPY (SELECT) TO PROGRAM %L', 'rm -f ' || f);
END $$ LANGUAGE plpgsql;

CREATE TABLE vbin (v vector);
CREATE TABLE vbin3 (v vector(3));
\set VERBOSITY terse
SELECT load_binary('\x000200003f80000040000000', 'vbin');	-- [1,2]
SELECT load_binary('\x00000000', 'vbin');					-- no elements
SELECT load_binary('\xffff0000', 'vbin');					-- dim -1
SELECT load_binary('\x3e810000', 'vbin');					-- dim 16001
SELECT load_binary('\x000100013f800000', 'vbin');			-- reserved not 0
SELECT load_binary('\x000100007fc00000', 'vbin');			-- NaN
SELECT load_binary('\x00010000ff800000', 'vbin');			-- -Infinity
SELECT load_binary('\x000200003f800000', 'vbin');			-- truncated
SELECT load_binary('\x000100003f80000000', 'vbin');		-- trailing byte
SELECT load_binary('\x000200003f80000040000000', 'vbin3');	-- wrong length
\set VERBOSITY default
SELECT * FROM vbin;
SELECT count(*) FROM vbin3;
DROP TABLE vb, vb2, vbin, vbin3;
DROP FUNCTION load_binary(bytea, regclass);
