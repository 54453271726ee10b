-- Monthly sales by product line (as the BI view sales_by_product_line_monthly): revenue (quantity_ordered * price_each), orders and quantity ordered per month of the order date, cancelled orders left out, from the Iceberg tables (the latest version of each order line, order and product).
-- Rendered by Terraform (modules/pipeline_settings) with the pipeline's Glue database; Athena reads the
-- Iceberg tables, not the Redshift views dbt builds, and answers as the BI view does: cancelled orders are
-- left out, every other status counts. The tables keep every version of a record: the latest one of each
-- key counts (latest ingest_on, then processing_timestamp, then landing object), as in dbt's staging models.
WITH order_lines AS (
  SELECT order_number, product_code, quantity_ordered, price_each
  FROM (
    SELECT d.*, row_number() OVER (
      PARTITION BY order_number, product_code
      ORDER BY ingest_on DESC, processing_timestamp DESC, source_object DESC
    ) AS version_rank
    FROM "${database}"."orderdetails" AS d
  ) AS versions
  WHERE version_rank = 1
),
orders AS (
  SELECT order_number, order_date, status
  FROM (
    SELECT o.*, row_number() OVER (
      PARTITION BY order_number
      ORDER BY ingest_on DESC, processing_timestamp DESC, source_object DESC
    ) AS version_rank
    FROM "${database}"."orders" AS o
  ) AS versions
  WHERE version_rank = 1
),
products AS (
  SELECT product_code, product_line
  FROM (
    SELECT p.*, row_number() OVER (
      PARTITION BY product_code
      ORDER BY ingest_on DESC, processing_timestamp DESC, source_object DESC
    ) AS version_rank
    FROM "${database}"."products" AS p
  ) AS versions
  WHERE version_rank = 1
)
SELECT
  date_trunc('month', o.order_date)         AS order_month,
  p.product_line,
  sum(l.quantity_ordered * l.price_each)    AS revenue,
  count(DISTINCT l.order_number)            AS orders,
  sum(l.quantity_ordered)                   AS quantity
FROM order_lines AS l
JOIN orders AS o ON o.order_number = l.order_number
JOIN products AS p ON p.product_code = l.product_code
WHERE o.status <> 'Cancelled'
GROUP BY 1, 2
ORDER BY 1, 2
