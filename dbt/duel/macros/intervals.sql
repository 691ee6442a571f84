{#
    95 % confidence intervals, so that a comparison of groups shows how far each value could be
    from what more rows would show (engagement_by_platform: a platform whose engagement is known
    for 73 tasks can lead one known for 2,554 by chance alone). Both use Student's t with n - 1
    degrees of freedom, and both are clipped at `minimum` below (0 for engagement and rates,
    which cannot be negative), as sales_outliers' bounds are.

    t_quantile_975(df): the 0.975 quantile of Student's t, from the standard table rounded up
    to 3 decimals: 1 to 30 degrees of freedom, then between the table's rows (40, 60, 120, 1000)
    the quantile of the row below, which is larger. An interval is never narrower than the
    exact one (at 72 degrees of freedom 2.001, against the exact 1.993).
#}
{% macro t_quantile_975(df) -%}
    {%- set table = [
        12.707, 4.303, 3.183, 2.777, 2.571, 2.447, 2.365, 2.307, 2.263, 2.229,
        2.201, 2.179, 2.161, 2.145, 2.132, 2.120, 2.110, 2.101, 2.094, 2.086,
        2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.049, 2.046, 2.043,
    ] -%}
    case
    {%- for quantile in table %}
        when {{ df }} <= {{ loop.index }} then {{ '%.3f' % quantile }}
    {%- endfor %}
        when {{ df }} < 40 then 2.043
        when {{ df }} < 60 then 2.022
        when {{ df }} < 120 then 2.001
        when {{ df }} < 1000 then 1.980
        else 1.963
    end
{%- endmacro %}

{#
    The interval of the mean of `values` (an expression, aggregated over the group): mean -/+ t x
    s / sqrt(n), n the known values, s their sample standard deviation; NULL below two known
    values. `bound`: 'low' or 'high'. numeric(38, 2), as the averages.
#}
{% macro mean_interval(values, bound, minimum=none) -%}
    {%- set edge -%}
        avg({{ values }}) {{ '-' if bound == 'low' else '+' }} {{ t_quantile_975('count(' ~ values ~ ') - 1') }}
            * stddev_samp({{ values }}) / sqrt({{ cast_as('count(' ~ values ~ ')', 'numeric') }})
    {%- endset -%}
    cast(
        round({{ clipped(edge, minimum) if bound == 'low' else edge }}, 2)
        as numeric(38, 2)
    )
{%- endmacro %}

{#
    The interval of a ratio of sums R = sum(y) / sum(x) over n rows (the engagement rate: its
    tasks' engagement over their reach), by the delta method for a ratio estimator: its standard
    error is sqrt(sum((y - R x)^2) x n / (n - 1)) / sum(x) (Cochran, Sampling Techniques, 6.9).
    With y - R x = (y sum(x) - sum(y) x) / sum(x), that is sqrt(S x n / (n - 1)) / sum(x)^2 for
    S = sum((y sum(x) - sum(y) x)^2): integers on Postgres, so exact in its numeric
    (exact_number_type; double on Spark), where R x in any finite precision lost the residuals
    of rates near 10^12, and the one-pass form sum(y^2) - 2 R sum(x y) + R^2 sum(x^2) cancelled.
    `ratio`: R as the model states it (the interval is centred on it, so it always holds it);
    `squares`: S, summed in a second pass over the rows. NULL below two rows or when sum(x) is 0.
#}
{% macro ratio_interval(ratio, n, sum_x, squares, bound, minimum=none) -%}
    {%- set wide = exact_number_type() -%}
    {%- set half -%}
        {{ t_quantile_975(n ~ ' - 1') }}
            * sqrt({{ cast_as(squares, wide) }} * {{ n }} / nullif({{ cast_as(n, wide) }} - 1, 0))
            / nullif({{ cast_as(sum_x, wide) }} * {{ cast_as(sum_x, wide) }}, 0)
    {%- endset -%}
    {%- set edge = ratio ~ (' - ' if bound == 'low' else ' + ') ~ cast_as(half, 'numeric') -%}
    cast(
        round({{ clipped(edge, minimum) if bound == 'low' else edge }}, 6)
        as numeric(38, 6)
    )
{%- endmacro %}

{#
    `edge`, or `minimum` where it is below it; NULL stays NULL (greatest() would make it the
    minimum, on both engines: a platform of one task had a low end of 0). No minimum: `edge`.
#}
{% macro clipped(edge, minimum) -%}
    {%- if minimum is none -%}
        {{ edge }}
    {%- else -%}
        case when {{ edge }} < {{ minimum }} then {{ minimum }} else {{ edge }} end
    {%- endif -%}
{%- endmacro %}
