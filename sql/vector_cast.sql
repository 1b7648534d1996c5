-- Casts between vector and arrays.

SELECT ARRAY[1,2,3]::vector;
SELECT ARRAY[1.5,2.25,-3]::real[]::vector;
SELECT ARRAY[1.5,2.25,-3]::double precision[]::vector;
SELECT ARRAY[1.5,2.25,-3]::numeric[]::vector;
SELECT '[1.5,2.25,-3]'::vector::real[];
SELECT ('[1,2,3]'::vector)::real[] = ARRAY[1,2,3]::real[] AS equal;
-- float8 values round to the nearest float4
SELECT ARRAY[0.1::float8]::vector;

-- assignment casts let array values go into vector columns
CREATE TABLE vc (v vector(2));
INSERT INTO vc VALUES (ARRAY[1,2]), (ARRAY[3.5,4]::float8[]);
SELECT * FROM vc;
DROP TABLE vc;

-- bad arrays
SELECT ARRAY[]::integer[]::vector;
SELECT '{}'::real[]::vector;
SELECT ARRAY[1,NULL,3]::vector;
SELECT ARRAY[NULL]::real[]::vector;
SELECT ARRAY[[1,2],[3,4]]::vector;
SELECT ARRAY['NaN']::real[]::vector;
SELECT ARRAY['Infinity']::double precision[]::vector;
SELECT ARRAY['NaN']::numeric[]::vector;
SELECT ARRAY[1e39]::double precision[]::vector;
SELECT ARRAY[1e39]::numeric[]::vector;
SELECT array_fill(1, ARRAY[16001])::vector;
SELECT ARRAY['1']::text[]::vector;
