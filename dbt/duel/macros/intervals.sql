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
    The interval of the mean of n known values from their sums (engagement_interval_rollup):
    mean -/+ t x s / sqrt(n), s their sample standard deviation (stddev_from_sums); NULL below
    two known values. The mean is their sum over n in the exact type (numeric: as avg()
    divides; double on Spark, as its avg() of integers). `bound`: 'low' or 'high'. numeric(38, 2), as the averages.
#}
{% macro mean_interval(n, total, stddev, bound, minimum=none) -%}
    {%- set edge -%}
        {{ cast_as(total, exact_number_type()) }} / nullif({{ n }}, 0) {{ '-' if bound == 'low' else '+' }} {{ t_quantile_975(n ~ ' - 1') }}
            * {{ stddev }} / sqrt({{ cast_as(n, 'numeric') }})
    {%- endset -%}
    cast(
        round({{ clipped(edge, minimum) if bound == 'low' else edge }}, 2)
        as numeric(38, 2)
    )
{%- endmacro %}

{#
    The sample standard deviation of n values from their sum and the sum of their squares:
    sqrt((n sum(y^2) - sum(y)^2) / (n (n - 1))), as Postgres' stddev_samp computes it from the
    same two sums (exact in numeric; 0 where rounding could make the numerator negative, as
    there). NULL below two values.
#}
{% macro stddev_from_sums(n, total, squares) -%}
    {%- set wide = exact_number_type() -%}
    case
        when {{ n }} > 1
            then sqrt(
                greatest({{ cast_as(n, wide) }} * {{ squares }} - {{ cast_as(total, wide) }} * {{ total }}, 0)
                / ({{ cast_as(n, wide) }} * ({{ n }} - 1))
            )
    end
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
    `squares`: S (rate_squares below: in one pass on Postgres, in a second one elsewhere). NULL
    below two rows or when sum(x) is 0.
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
    ratio_interval's `squares` for the engagement rate of a group of tasks, S = sum((y sum(x) -
    sum(y) x)^2) over its rated tasks (engagement y and reach x both known), in one of two ways:

    - On Postgres, in the group's own aggregate, from three more sums (rate_moments): S =
      X^2 sum(y^2) - 2 X Y sum(x y) + Y^2 sum(x^2), X and Y the group's reach and engagement
      sums (engagement_rate_reach, engagement_rate_engagement). Every term is an integer in
      numeric, so the identity holds to the last digit: the same S as the residuals summed one
      by one (the one-pass form with a rounded ratio R in place of Y / X is what cancelled).
      At 1M tasks it took engagement_by_platform's select from about 3.0 s to 1.8 s, and gave
      engagement_by_join_month its intervals for about 0.7 s where a second pass cost 3-4 s
      (bench/analysis.md, thirtieth pass).
    - Where the exact type is not exact (Spark: double, where that form cancels; its decimal
      stops at 38 digits), the residuals are summed in a second pass over the tasks, against
      the groups' sums: the model's `rate_residuals`, its `squares` column.

    rate_residuals_in_one_pass(): which of the two the target takes (exact_number_type). rate_moments(tasks): the
    sums the first needs, as `, <sum> as rate_..._moment` columns to end a group's aggregate
    (nothing for the second). rate_squares(measures, residuals): S for a row of the aggregate
    `measures`, or of the second pass's `residuals`.
#}
{% macro rate_residuals_in_one_pass() -%}
    {{ return(exact_number_type() == 'numeric') }}
{%- endmacro %}

{% macro rate_moments(tasks) -%}
    {%- if rate_residuals_in_one_pass() -%}
    {%- set rated = tasks ~ '.engagement is not null and ' ~ tasks ~ '.reach is not null' -%}
    {%- for name, left, right in [
        ('yy', 'engagement', 'engagement'), ('xy', 'engagement', 'reach'), ('xx', 'reach', 'reach')
    ] %},
        cast(
            coalesce(
                sum({{ cast_as(tasks ~ '.' ~ left, exact_number_type()) }} * {{ tasks }}.{{ right }})
                    filter (where {{ rated }}),
                0
            )
            as {{ square_sum_type() }}
        ) as rate_{{ name }}_moment
    {%- endfor -%}
    {%- endif -%}
{%- endmacro %}

{% macro rate_moment_names() -%}
    {{ return(['rate_yy_moment', 'rate_xy_moment', 'rate_xx_moment'] if rate_residuals_in_one_pass() else []) }}
{%- endmacro %}

{% macro rate_squares(measures, residuals) -%}
    {%- if rate_residuals_in_one_pass() -%}
    {%- set x, y = measures ~ '.engagement_rate_reach', measures ~ '.engagement_rate_engagement' -%}
    ({{ x }} * {{ x }} * {{ measures }}.rate_yy_moment
        - 2 * {{ x }} * {{ y }} * {{ measures }}.rate_xy_moment
        + {{ y }} * {{ y }} * {{ measures }}.rate_xx_moment)
    {%- else -%}
    {{ residuals }}.squares
    {%- endif -%}
{%- endmacro %}

{#
    A group's engagement intervals, as engagement_by_platform and engagement_by_join_month hold
    them, from additive sums (so a group's can be kept by difference, macros/differences.sql).
    engagement_square_sums(tasks): to end an aggregate over the tasks `tasks`, the sum of the
    known engagements' squares and the sums rate_squares reads (rate_moments), 0 where none is
    known; engagement_square_names(): their column names. engagement_interval_rollup(partials):
    to end an aggregate over rows holding them and task_sums() (int_task_sums), the standard
    deviation of the known engagement, the mean's interval and the rate's moments.
    engagement_interval_columns(measures, residuals): the model's five columns from a row of
    that aggregate (and of the second pass's `residuals`, where the target sums them there):
    engagement_stddev, engagement_average_low and _high, engagement_rate_low and _high.
#}
{% macro engagement_square_sums(tasks) -%}
        cast(
            coalesce(sum({{ cast_as(tasks ~ '.engagement', exact_number_type()) }} * {{ tasks }}.engagement), 0)
            as {{ square_sum_type() }}
        ) as engagement_squares
        {{- rate_moments(tasks) }}
{%- endmacro %}

{#
    The type of a sum of products of two measures (squares, moments): integers below 10^24 each
    (dbt_project.yml measure_ranges), summed over up to 9.3 x 10^18 rows, below 10^44: 48
    digits on Postgres; double on Spark, as exact_number_type.
#}
{% macro square_sum_type() -%}
    {{ return('numeric(48, 0)' if exact_number_type() == 'numeric' else exact_number_type()) }}
{%- endmacro %}

{% macro engagement_square_names() -%}
    {{ return(['engagement_squares'] + rate_moment_names()) }}
{%- endmacro %}

{% macro engagement_interval_rollup(partials) -%}
    {%- set n = 'sum(' ~ partials ~ '.engagement_known)' -%}
    {%- set total = 'sum(' ~ partials ~ '.engagement)' -%}
    {%- set stddev = stddev_from_sums(n, total, 'sum(' ~ partials ~ '.engagement_squares)') -%}
        cast(round({{ stddev }}, 2) as numeric(38, 2)) as engagement_stddev,
        {{ mean_interval(n, total, stddev, 'low', minimum=0) }} as engagement_average_low,
        {{ mean_interval(n, total, stddev, 'high') }} as engagement_average_high
    {%- for name in rate_moment_names() %},
        sum({{ partials }}.{{ name }}) as {{ name }}
    {%- endfor -%}
{%- endmacro %}

{% macro engagement_interval_columns(measures, residuals) -%}
        {{ measures }}.engagement_stddev,
        {{ measures }}.engagement_average_low,
        {{ measures }}.engagement_average_high,
        {%- for bound in ['low', 'high'] %}
        {{ ratio_interval(
            measures ~ '.engagement_rate',
            measures ~ '.engagement_rate_tasks',
            measures ~ '.engagement_rate_reach',
            rate_squares(measures, residuals),
            bound,
            minimum=0
        ) }} as engagement_rate_{{ bound }}{% if not loop.last %},{% endif %}
        {%- endfor %}
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
