-- Opportunities with the contact's dimensions.
SELECT
    o.opportunity_id,
    o.contact_id,
    o.created_at,
    o.closed_at,
    o.status,
    o.amount,
    o.currency,
    c.lead_source,
    c.channel,
    c.company_size,
    c.industry,
    c.region
FROM crm.opportunities AS o
JOIN reporting.contacts AS c ON c.contact_id = o.contact_id
