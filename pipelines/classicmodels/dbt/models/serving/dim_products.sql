-- Dimension: one row per product (latest version), with its product line's description.
-- left join: a product whose line has not landed keeps its row, with a null description.
select
    p.product_code,
    p.product_name,
    p.product_line,
    l.text_description  as product_line_description,
    p.product_scale,
    p.product_vendor,
    p.product_description,
    p.quantity_in_stock,
    p.buy_price,
    p.msrp
from {{ ref('stg_products') }} as p
left join {{ ref('stg_productlines') }} as l
    on l.product_line = p.product_line
