-- Lifecycle stage changes with the contact's dimensions.
SELECT
    l.contact_id,
    l.changed_at,
    l.from_stage,
    l.to_stage,
    c.lead_source,
    c.channel,
    c.company_size,
    c.industry,
    c.region
FROM crm.lifecycle_changes AS l
JOIN reporting.contacts AS c ON c.contact_id = l.contact_id
