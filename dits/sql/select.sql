-- Top-α selection of one iteration's preference pairs (DITS, arXiv 2502.00955, Eq. 15 of v1;
-- the authors' ``local_influence/generate_influence_dataset.py``).
--
--   H = (I − min I) / (max I − min I) + γ · Q(chosen)      per task, ties broken by a seeded draw,
--   keep the first floor(α · n) pairs, n = the task's pairs.
--
-- Relations: pairs (one iteration's pairs table) and influence(pair_id, estimator, score).
-- Parameters, bound by dits/select.py (never formatted into this text):
--   $by        'influence' | 'q' | 'random' | 'all'
--   $alpha     fraction kept (paper 0.5)
--   $gamma     weight of Q(chosen) (paper 1: code adds raw Q to min-max-normalised influence)
--   $seed      the draw that orders by = 'random' and breaks every tie
--   $estimator the influence estimator that by = 'influence' reads
--
-- Each task is selected on its own, as each task trains its own model. When max I = min I (no
-- validation outcome moved) the normalised influence is 0 and H = γ·Q. Under by = 'influence' a
-- pair with no score (the authors' incomplete last group) is never eligible but still counts in n.
-- by = 'q' ranks by γ·Q alone; 'random' by the draw alone; 'all' keeps every pair, in the draw's
-- order. H is null where it is not used. The draw is md5(pair_id/seed), stable across DuckDB
-- versions: with few validation episodes influence takes few values, and breaking its many ties by
-- pair_id (a hash of the pair's content) would let one fixed order pick the pairs at every seed.

WITH scored AS (
    SELECT p.pair_id, p.task, p.q_chosen, i.score AS influence
    FROM pairs AS p
    LEFT JOIN (SELECT pair_id, score FROM influence WHERE estimator = $estimator) AS i USING (pair_id)
),

normalised AS (
    SELECT
        *,
        count(*) OVER per_task AS n,
        CASE
            WHEN max(influence) OVER per_task = min(influence) OVER per_task THEN 0.0
            ELSE (influence - min(influence) OVER per_task)
                / (max(influence) OVER per_task - min(influence) OVER per_task)
        END AS influence_norm
    FROM scored
    WINDOW per_task AS (PARTITION BY task)
),

ranked AS (
    SELECT
        pair_id,
        task,
        n,
        CASE $by
            WHEN 'influence' THEN influence_norm + $gamma * q_chosen
            WHEN 'q' THEN $gamma * q_chosen
        END AS h,
        row_number() OVER (
            PARTITION BY task
            ORDER BY
                h DESC NULLS LAST,
                md5(pair_id || '/' || CAST($seed AS VARCHAR)),
                pair_id
        ) AS rank
    FROM normalised
    WHERE $by <> 'influence' OR influence IS NOT NULL
)

SELECT pair_id, task, rank, h, $by AS by, $alpha AS alpha, $gamma AS gamma
FROM ranked
WHERE $by = 'all' OR rank <= floor($alpha * n)
ORDER BY task, rank
