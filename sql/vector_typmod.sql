-- vector(n): values of another length are rejected on insert, update and
-- cast, with a message naming both lengths.

SELECT '[1,2,3]'::vector(3);
SELECT '[1,2]'::vector(3);
SELECT '[1,2,3]'::vector::vector(2);
SELECT ARRAY[1,2]::vector(3);

CREATE TABLE vt (id int, v vector(3));
INSERT INTO vt VALUES (1, '[1,2,3]');
INSERT INTO vt VALUES (2, '[1,2]');
INSERT INTO vt VALUES (3, '[1,2,3,4]');
INSERT INTO vt VALUES (4, ARRAY[4,5,6]);
INSERT INTO vt VALUES (5, ARRAY[4,5]::real[]);
UPDATE vt SET v = '[1,2]' WHERE id = 1;
UPDATE vt SET v = v || '[1]' WHERE id = 1;
UPDATE vt SET v = '[7,8,9]' WHERE id = 1;
SELECT * FROM vt ORDER BY id;

-- COPY checks the length too
COPY vt FROM STDIN;
6	[1,2,3]
7	[1,2]
\.
SELECT count(*) FROM vt;

-- the column type shows its length
SELECT format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = 'vt'::regclass AND attname = 'v';
DROP TABLE vt;

-- invalid type modifiers
SELECT '[1]'::vector(0);
SELECT '[1]'::vector(16001);
SELECT '[1]'::vector(2, 3);
CREATE TABLE vbad (v vector(-1));
