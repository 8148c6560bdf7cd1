-- TOA's DPO pairs (as in the authors' README): chosen = the rank-1 response, rejected = the response at rank
-- $reject_rank, per method and prompt, ranks by raw reward (ties to the earlier play).
--
-- The authors pair the 1st with the 30th of 160 responses; dits/toa/select.py binds $reject_rank to
-- toa.reject_rank, or to that rank scaled to the budget, round(30 / 160 · K·n), at least 2.
-- A prompt whose rank-1 and rejected responses have the same reward gives no pair (no preference),
-- nor does one with fewer than $reject_rank responses.
--
-- Relation: toa. Parameters: $n (the budget whose responses are the data), $reject_rank.

WITH ranked AS (
    SELECT method, task, example_id, t, text, reward, score,
           row_number() OVER (PARTITION BY method, task, example_id ORDER BY reward DESC, t) AS rank
    FROM toa
    WHERE n = $n
)
SELECT c.method, c.task, c.example_id,
       c.text AS chosen, r.text AS rejected,
       c.reward AS reward_chosen, r.reward AS reward_rejected,
       c.score AS score_chosen, r.score AS score_rejected
FROM ranked AS c
JOIN ranked AS r USING (method, task, example_id)
WHERE c.rank = 1 AND r.rank = $reject_rank AND c.reward > r.reward
ORDER BY c.method, c.task, c.example_id
