"""Writes trajectories.jsonl from the hand-written notebook steps below: one item per analysis, its steps in
order, and metadata.skills naming the skill each step was written to exercise (kept only for evaluation:
induction never reads them). Run: python examples/induce/make_trajectories.py"""

import json
from pathlib import Path

# (task, [(skill, step text), ...]) -- one data-analysis notebook each
ANALYSES = [
    ("Which store region had the highest average basket value last quarter, and is the gap to the others real?", [
        ("load_inspect", "Load sales_q3.csv with pandas and look at df.shape, df.dtypes and df.head() to see the columns: order_id, store_id, basket_value, date."),
        ("missing_values", "basket_value has 312 NaNs out of 48k rows; drop those rows since the value cannot be recovered, and check df.isna().sum() is now zero."),
        ("join_tables", "Merge the orders with stores.csv on store_id (how='left') to attach each store's region, then confirm the row count did not change."),
        ("groupby_aggregate", "Group by region and compute the mean and count of basket_value with df.groupby('region')['basket_value'].agg(['mean', 'count'])."),
        ("plot_chart", "Draw a bar chart of mean basket value per region with error bars, axis labels and a title, and save it as region_basket.png."),
        ("hypothesis_test", "Run a one-way ANOVA across regions with scipy.stats.f_oneway; p = 0.003, so at least one region's mean differs."),
    ]),
    ("Did the new onboarding flow change 30-day retention?", [
        ("load_inspect", "Read users.parquet into a DataFrame and print info() to check the types of signup_date, variant and retained_30d."),
        ("missing_values", "About 2% of rows have no variant because of a logging bug; exclude them rather than guessing the variant, and note the exclusion."),
        ("join_tables", "Join the events table to users on user_id with an inner join so that each event carries the user's variant."),
        ("groupby_aggregate", "Compute retention per variant: users.groupby('variant')['retained_30d'].mean() along with the group sizes."),
        ("hypothesis_test", "Compare retention between control and treatment with a two-proportion z-test (statsmodels proportions_ztest); z = 2.4, p = 0.016."),
        ("plot_chart", "Plot retention by variant as a bar chart with 95% confidence intervals so the difference and its uncertainty are visible."),
    ]),
    ("How does delivery time vary with distance for the courier fleet?", [
        ("load_inspect", "Load deliveries.csv, check the number of rows and columns and the first five records, and confirm distance_km is numeric."),
        ("missing_values", "distance_km is missing for 140 deliveries; impute it from the pickup and drop-off coordinates with the haversine formula instead of dropping them."),
        ("join_tables", "Left-join the couriers table on courier_id to bring in vehicle_type, checking for duplicate courier ids first so the join does not multiply rows."),
        ("groupby_aggregate", "Bucket distance into 2 km bins and take the median delivery minutes per bin and vehicle type with a pivot_table."),
        ("plot_chart", "Make a scatter plot of delivery minutes against distance coloured by vehicle type, with a fitted trend line and labelled axes."),
        ("hypothesis_test", "Test whether the slope of minutes on distance is non-zero with an OLS regression; the coefficient is 3.1 min/km with p < 0.001."),
    ]),
    ("Are hospital readmission rates different between the two wards?", [
        ("load_inspect", "Open admissions.xlsx with pd.read_excel, list the sheet's columns and dtypes, and count the rows per ward as a first look."),
        ("missing_values", "Discharge dates are blank for patients still admitted; filter those out of the readmission analysis, since their outcome is not known yet."),
        ("join_tables", "Combine admissions with the patients table on patient_id so each stay has the patient's age group, validating a many-to-one relationship."),
        ("groupby_aggregate", "Aggregate readmissions per ward and age group: the number of stays, the number readmitted within 30 days and the rate."),
        ("hypothesis_test", "Use a chi-square test of independence on the ward x readmitted contingency table; chi2 = 5.8, p = 0.016."),
        ("plot_chart", "Show the readmission rate for each ward by age group as a grouped bar chart with a legend and percentage axis."),
    ]),
    ("What drives monthly churn among subscribers?", [
        ("load_inspect", "Load subscriptions.csv and inspect it: 22,000 rows, 14 columns; describe() on the numeric columns shows tenure from 0 to 71 months."),
        ("missing_values", "TotalCharges is stored as text with blanks for new customers; convert it with pd.to_numeric(errors='coerce') and fill the blanks with 0 since they have not been billed."),
        ("join_tables", "Merge support_tickets aggregated per customer into the subscriptions table on customer_id, filling customers without tickets with 0."),
        ("groupby_aggregate", "Compute the churn rate by contract type and by number of tickets with groupby and mean, sorted from highest to lowest."),
        ("plot_chart", "Plot churn rate against tenure in months as a line chart, one line per contract type, with a title and legend."),
        ("hypothesis_test", "Check whether churners have more support tickets than non-churners with a Mann-Whitney U test, since ticket counts are skewed; p = 0.0004."),
    ]),
    ("Is the energy use of the office buildings higher on weekends than expected?", [
        ("load_inspect", "Read the meter readings from meters.csv, parse the timestamp column as datetime, and look at the date range and sampling interval."),
        ("missing_values", "There are gaps of a few hours when meters went offline; interpolate gaps up to 3 hours linearly and leave longer gaps as missing."),
        ("join_tables", "Attach building metadata (floor area, type) by merging on building_id, and assert that every reading found its building."),
        ("groupby_aggregate", "Resample to daily totals per building and compute the mean kWh per square metre for weekdays and weekends."),
        ("hypothesis_test", "Compare weekend and weekday daily use per building with a paired t-test across buildings; t = -9.2, p < 0.001."),
        ("plot_chart", "Plot a heatmap of average consumption by hour of day and day of week to show when the load is high."),
    ]),
    ("Which marketing channel brings the most valuable customers?", [
        ("load_inspect", "Import customers.csv and orders.csv, print the shapes of both tables and peek at a sample of rows from each."),
        ("missing_values", "acquisition_channel is null for 5% of customers; label them as 'unknown' so they stay visible in the channel comparison instead of being dropped."),
        ("join_tables", "Join orders to customers on customer_id and keep only orders from the first 180 days after signup."),
        ("groupby_aggregate", "Sum revenue per customer, then take the mean and median 180-day revenue per acquisition channel."),
        ("plot_chart", "Create a box plot of 180-day revenue by channel on a log scale so the skewed distributions can be compared."),
        ("hypothesis_test", "Run a Kruskal-Wallis test of 180-day revenue across channels because revenue is far from normal; H = 41.3, p < 0.001."),
    ]),
    ("Did the price change reduce the number of units sold per week?", [
        ("load_inspect", "Load weekly_units.csv and check the columns product_id, week, units and price, the number of products and the span of weeks."),
        ("missing_values", "Weeks with no sales are simply absent; reindex each product to the full week range and fill units with 0 so that zero-sale weeks count."),
        ("join_tables", "Merge the price change log on product_id and week with merge_asof so each week carries the price in force that week."),
        ("groupby_aggregate", "Compute average weekly units per product before and after the change with a groupby on product and period."),
        ("hypothesis_test", "Test the before/after difference in weekly units with a Wilcoxon signed-rank test over products; p = 0.21, no significant change."),
        ("plot_chart", "Draw a line chart of total weekly units over time with a vertical line marking the week of the price change."),
    ]),
    ("Is there a relation between study hours and exam scores in the course?", [
        ("load_inspect", "Load grades.csv into pandas and inspect the summary statistics of hours_studied and exam_score and their data types."),
        ("missing_values", "Three students have no exam score because they withdrew; remove them, and report the remaining sample size of 184."),
        ("join_tables", "Join the survey responses with grades on student_id; 12 students did not answer the survey, so use an inner join and mention the loss."),
        ("groupby_aggregate", "Group the students by attendance quartile and compute the average exam score and hours studied in each quartile."),
        ("plot_chart", "Scatter exam score against hours studied, add the regression line, and label the axes with units."),
        ("hypothesis_test", "Compute the Pearson correlation between hours and score with scipy.stats.pearsonr; r = 0.46, p < 0.001."),
    ]),
    ("Which warehouses have the most late shipments, and is lateness seasonal?", [
        ("load_inspect", "Read shipments.json with pd.read_json, flatten the nested address field, and examine the resulting columns and row count."),
        ("missing_values", "promised_date is missing for 0.4% of shipments; those cannot be judged late or on time, so drop them and log how many were removed."),
        ("join_tables", "Merge warehouses.csv on warehouse_code to get each warehouse's city and capacity, after stripping whitespace from the codes in both tables."),
        ("groupby_aggregate", "Calculate the share of late shipments per warehouse and per month with a groupby over warehouse and shipment month."),
        ("plot_chart", "Plot the monthly late share for the five worst warehouses as small multiples sharing the y axis."),
        ("hypothesis_test", "Test whether lateness depends on the season with a chi-square test on the season x late table; p = 0.07, not significant at 5%."),
    ]),
    ("How do rental prices depend on neighbourhood and size?", [
        ("load_inspect", "Load listings.csv, look at the first rows, and check that price is parsed as a number rather than a string with a dollar sign."),
        ("missing_values", "square_feet is missing for 60% of listings; rather than impute so much, restrict the size analysis to listings that have it and keep all for the neighbourhood comparison."),
        ("join_tables", "Join the neighbourhood boundaries table on neighbourhood_id to add the borough name to each listing."),
        ("groupby_aggregate", "Compute the median price per borough and the median price per square foot, using median because prices have outliers."),
        ("hypothesis_test", "Fit an OLS model of log price on log size and borough dummies and read the borough coefficients and their p-values."),
        ("plot_chart", "Make a violin plot of log price by borough, ordered by median price, with the axis label in dollars."),
    ]),
    ("Did the server latency regress after the last deployment?", [
        ("load_inspect", "Load the request log latency.csv, check the dtypes, and confirm that timestamps are in UTC and latency_ms is an integer."),
        ("missing_values", "Requests that timed out have an empty latency_ms; set them to the 30,000 ms timeout instead of dropping them, because dropping would hide the slowest requests."),
        ("join_tables", "Merge the deployment log on timestamp with merge_asof (direction='backward') so each request is tagged with the version it ran on."),
        ("groupby_aggregate", "Compute p50, p95 and p99 latency per version with groupby and quantile."),
        ("plot_chart", "Plot the empirical CDF of latency for the two versions on a log x axis so the tail difference is clear."),
        ("hypothesis_test", "Use a permutation test on the difference in p95 latency between versions with 10,000 resamples; p = 0.002."),
    ]),
    ("Are air quality readings worse near the highway?", [
        ("load_inspect", "Read sensors.csv and readings.csv, print the number of sensors and the number of hourly readings, and inspect the pm25 column."),
        ("missing_values", "Negative pm25 values are sensor errors; replace them with NaN and drop sensors with more than 20% missing hours from the comparison."),
        ("join_tables", "Join readings to sensors on sensor_id to add each sensor's distance to the highway, checking that no reading is left without a sensor."),
        ("groupby_aggregate", "Average pm25 per sensor, then compute the mean of those sensor averages for sensors within 500 m of the highway and beyond."),
        ("hypothesis_test", "Compare near and far sensors with Welch's t-test on the sensor means, since the groups have unequal variances; p = 0.03."),
        ("plot_chart", "Plot each sensor's mean pm25 against its distance to the highway with a LOWESS smoother and labelled axes."),
    ]),
    ("Which factors explain employee attrition in the HR dataset?", [
        ("load_inspect", "Load hr_attrition.csv and list each column with its type and number of unique values to spot categorical columns."),
        ("missing_values", "years_since_promotion is missing for recent hires; fill it with their tenure, which is the time since they joined at that level."),
        ("join_tables", "Merge the department table on dept_id to add the department's manager and size to each employee row."),
        ("groupby_aggregate", "Compute the attrition rate per department and per overtime flag with a crosstab normalised by row."),
        ("plot_chart", "Draw a stacked bar chart of stayed versus left by department, with percentages on the bars."),
        ("hypothesis_test", "Fit a logistic regression of attrition on overtime, tenure and salary band and report the odds ratio for overtime with its confidence interval."),
    ]),
]


def main() -> None:
    out = Path(__file__).with_name("trajectories.jsonl")
    with out.open("w", encoding="utf-8") as sink:
        for n, (task, steps) in enumerate(ANALYSES):
            item = {"id": f"analysis-{n:02d}", "question": task, "domain": "data_analysis",
                    "steps": [{"text": text} for _, text in steps],
                    "metadata": {"skills": [skill for skill, _ in steps]}}
            sink.write(json.dumps(item, ensure_ascii=False) + "\n")
    print(f"wrote {out}: {len(ANALYSES)} trajectories, {sum(len(s) for _, s in ANALYSES)} steps")


if __name__ == "__main__":
    main()
