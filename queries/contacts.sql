-- CRM contacts; the firmographic columns here are the dimensions of every CRM metric.
SELECT contact_id, created_at, lead_source, company_size, industry, region, owner
FROM crm.contacts
