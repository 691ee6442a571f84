{#
    95 % confidence intervals, so that a comparison of groups says when the data cannot tell them
    apart (engagement_by_platform: a platform whose engagement is known for 73 tasks can lead one
    known for 2,554 by chance alone). Both use Student's t with n - 1 degrees of freedom.

    t_quantile_975(df): the 0.975 quantile of Student's t, from the standard table: exact for 1
    to 30 degrees of freedom, and between the table's rows (40, 60, 120, 1000) the quantile of
    the row below, which is larger: an interval is never narrower than it should be (at 72
    degrees of freedom 2.000, against the exact 1.993).
#}
{% macro t_quantile_975(df) -%}
    {%- set table = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
        2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
        2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ] -%}
    case
    {%- for quantile in table %}
        when {{ df }} <= {{ loop.index }} then {{ '%.3f' % quantile }}
    {%- endfor %}
        when {{ df }} < 40 then 2.042
        when {{ df }} < 60 then 2.021
        when {{ df }} < 120 then 2.000
        when {{ df }} < 1000 then 1.980
        else 1.962
    end
{%- endmacro %}

{#
    The interval of the mean of `values` (an expression, aggregated over the group): mean -/+ t x
    s / sqrt(n), n the known values, s their sample standard deviation; NULL below two known
    values. `bound`: 'low' or 'high'. numeric(38, 2), as the averages.
#}
{% macro mean_interval(values, bound) -%}
    cast(
        round(
            avg({{ values }}) {{ '-' if bound == 'low' else '+' }} {{ t_quantile_975('count(' ~ values ~ ') - 1') }}
                * stddev_samp({{ values }}) / sqrt({{ cast_as('count(' ~ values ~ ')', 'numeric') }}),
            2
        )
        as numeric(38, 2)
    )
{%- endmacro %}

{#
    The interval of a ratio of sums R = sum(y) / sum(x) over n rows (the engagement rate: its
    tasks' engagement over their reach), by the delta method for a ratio estimator: its standard
    error is sqrt(sum((y - R x)^2) x n / (n - 1)) / sum(x) (Cochran, Sampling Techniques, 6.9).
    The arguments are aggregates of the group: n, sum(y), sum(x), and the sums of y^2, x y and
    x^2 in double precision (the squares of counts up to 10^12 overflow numeric(38) on Spark; the
    rounding to 6 decimals is far above double's error). NULL below two rows or when sum(x) is 0.
#}
{% macro ratio_interval(n, sum_y, sum_x, sum_yy, sum_xy, sum_xx, bound) -%}
    {%- set ratio = cast_as(sum_y, 'double precision') ~ ' / nullif(' ~ cast_as(sum_x, 'double precision') ~ ', 0)' -%}
    {%- set interval -%}
            {{ ratio }} {{ '-' if bound == 'low' else '+' }} {{ t_quantile_975(n ~ ' - 1') }}
                * sqrt(
                    greatest(
                        {{ sum_yy }} - 2 * ({{ ratio }}) * {{ sum_xy }} + ({{ ratio }}) * ({{ ratio }}) * {{ sum_xx }},
                        0
                    )
                    * {{ cast_as(n, 'double precision') }} / nullif({{ cast_as(n, 'double precision') }} - 1, 0)
                )
                / nullif({{ cast_as(sum_x, 'double precision') }}, 0)
    {%- endset -%}
    cast(round({{ cast_as(interval, 'numeric') }}, 6) as numeric(38, 6))
{%- endmacro %}
