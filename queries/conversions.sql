-- Conversions for attribution (see /attribution), one row per conversion:
--   mql                  a contact reaching the MQL stage (counted like the `mqls` metric);
--   opportunity_created  an opportunity, with its amount (like `pipeline_created`);
--   closed_won           a won opportunity at its close date, with its amount
--                        (like `closed_won_revenue`).
SELECT DISTINCT
    'mql:' || contact_id || ':' || CAST(changed_at AS VARCHAR) AS conversion_id,
    contact_id AS entity_id,
    changed_at AS converted_at,
    'mql' AS conversion_type,
    CAST(NULL AS DECIMAL(12, 2)) AS revenue
FROM reporting.lifecycle_changes
WHERE to_stage = 'mql'
UNION ALL
SELECT
    'opp:' || opportunity_id,
    contact_id,
    created_at,
    'opportunity_created',
    amount
FROM reporting.opportunities
UNION ALL
SELECT
    'won:' || opportunity_id,
    contact_id,
    closed_at,
    'closed_won',
    amount
FROM reporting.opportunities
WHERE status = 'won'
