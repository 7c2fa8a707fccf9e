"""
Trains a random forest that predicts employee attrition.

No mlflow.start_run() here: on Azure ML and on mlyard the job's run is named by MLFLOW_RUN_ID and the first
logging call attaches to it; run by hand, that call starts a run of its own.
"""

import argparse
import os
from pathlib import Path

import cloudpickle
import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import sklearn
from mlflow.models import infer_signature
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

TARGET_COL = "Attrition"

NUMERIC_COLS = [
    "Age",
    "DailyRate",
    "DistanceFromHome",
    "Education",
    "EnvironmentSatisfaction",
    "HourlyRate",
    "JobInvolvement",
    "JobLevel",
    "JobSatisfaction",
    "MonthlyIncome",
    "MonthlyRate",
    "NumCompaniesWorked",
    "PercentSalaryHike",
    "PerformanceRating",
    "RelationshipSatisfaction",
    "StockOptionLevel",
    "TotalWorkingYears",
    "TrainingTimesLastYear",
    "WorkLifeBalance",
    "YearsAtCompany",
    "YearsInCurrentRole",
    "YearsSinceLastPromotion",
    "YearsWithCurrManager",
]

CAT_NOM_COLS = [
    "BusinessTravel",
    "Department",
    "EducationField",
    "Gender",
    "JobRole",
    "MaritalStatus",
    "OverTime",
]

# EmployeeNumber is an id; EmployeeCount, Over18 and StandardHours are constant: none of them is a feature.


def parse_args():
    """Parse input arguments"""

    parser = argparse.ArgumentParser("train")
    parser.add_argument("--train_data", type=str, help="Path to train dataset (a folder)")
    parser.add_argument("--model_output", type=str, help="Path of output model (a folder)")

    # classifier specific arguments
    parser.add_argument("--n_estimators", type=int, default=200, help="Number of trees")
    parser.add_argument("--max_depth", type=int, default=8, help="Maximum number of levels in tree")
    parser.add_argument("--min_samples_leaf", type=int, default=4,
                        help="Minimum number of samples required at each leaf node")
    parser.add_argument("--max_features", type=str, default="sqrt",
                        help="Number of features to consider at every split")
    parser.add_argument("--class_weight", type=str, default="balanced_subsample",
                        help="'balanced', 'balanced_subsample' or 'none' (leavers are the minority class)")
    parser.add_argument("--random_state", type=int, default=0, help="Seed of the forest")

    args = parser.parse_args()

    return args


def read_folder(folder, name):
    """The CSV a previous step wrote into a folder output."""
    path = Path(folder) / name
    return pd.read_csv(path if path.exists() else sorted(Path(folder).glob("*.csv"))[0])


def build_model(args):
    """One-hot encode the nominal columns and feed everything to a random forest."""
    preprocessor = ColumnTransformer(
        transformers=[
            ("numeric", "passthrough", NUMERIC_COLS),
            ("nominal", OneHotEncoder(handle_unknown="ignore"), CAT_NOM_COLS),
        ],
        remainder="drop",
    )
    classifier = RandomForestClassifier(
        n_estimators=args.n_estimators,
        max_depth=args.max_depth,
        min_samples_leaf=args.min_samples_leaf,
        max_features=args.max_features,
        class_weight=None if args.class_weight == "none" else args.class_weight,
        random_state=args.random_state,
    )
    return Pipeline(steps=[("preprocessor", preprocessor), ("classifier", classifier)])


def pip_requirements():
    """Pin what loading the model needs (inferring it loads the model in a subprocess, which takes seconds)."""
    return [
        f"mlflow=={mlflow.__version__}",
        f"scikit-learn=={sklearn.__version__}",
        f"pandas=={pd.__version__}",
        f"numpy=={np.__version__}",
        f"cloudpickle=={cloudpickle.__version__}",
    ]


def main(args):
    """Read train dataset, train model, save trained model"""

    print("mounted_path files: ")
    print(os.listdir(args.train_data))

    train_data = read_folder(args.train_data, "train.csv")

    # Split the data into input(X) and output(y)
    y_train = (train_data[TARGET_COL] == "Yes").astype(int)
    X_train = train_data[NUMERIC_COLS + CAT_NOM_COLS]

    model = build_model(args)

    mlflow.log_param("model", "RandomForestClassifier")
    mlflow.log_param("n_estimators", args.n_estimators)
    mlflow.log_param("max_depth", args.max_depth)
    mlflow.log_param("min_samples_leaf", args.min_samples_leaf)
    mlflow.log_param("max_features", args.max_features)
    mlflow.log_param("class_weight", args.class_weight)
    mlflow.log_param("train_rows", len(train_data))

    model.fit(X_train, y_train)

    # Evaluate on the train set (evaluate.py scores the held-out test set)
    yhat_train = model.predict(X_train)
    proba_train = model.predict_proba(X_train)[:, 1]

    mlflow.log_metric("train_accuracy", accuracy_score(y_train, yhat_train))
    mlflow.log_metric("train_f1", f1_score(y_train, yhat_train))
    mlflow.log_metric("train_auc", roc_auc_score(y_train, proba_train))

    # Save the model as an MLflow model folder (the job output), with the signature no-code deployment needs
    signature = infer_signature(X_train, yhat_train)
    mlflow.sklearn.save_model(
        sk_model=model, path=args.model_output, signature=signature, pip_requirements=pip_requirements()
    )


if __name__ == "__main__":

    # ---------- Parse Arguments ----------- #
    args = parse_args()

    lines = [
        f"Train dataset input path: {args.train_data}",
        f"Model output path: {args.model_output}",
        f"n_estimators: {args.n_estimators}",
        f"max_depth: {args.max_depth}",
    ]

    for line in lines:
        print(line)

    main(args)
